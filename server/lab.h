// The lab's back end without HTTP: the registry of loaded models (and which is the default),
// the tokenizer, and dispatch of each API endpoint (JSON in, JSON out) to its typed request
// parser (requests.h) and endpoint (endpoints.h). Not the HTTP layer (http_server.h) and not a
// model loader (models/model_dir.h).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/bad_request.h"

namespace circuitlab::data {
class Tokenizer;
}

namespace circuitlab::server {

struct LabModel;
struct LabSae;

class Lab {
 public:
  // tokenizer_dir: encoder.json + vocab.bpe; empty = data::Tokenizer::load_default().
  explicit Lab(const std::string& tokenizer_dir = "", LabLimits limits = {});
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Loads a model dir (either family). name: "" = derived from the path (runs/<name>/model ->
  // <name>). Error (circuitlab::Error) naming the dir when it cannot be loaded. Returns the name.
  std::string add_model(const std::string& dir, const std::string& name = "");
  // The demo's models: <runs>/*/model that load (others are reported on stderr and skipped).
  std::vector<std::string> add_default_models(const std::string& runs_dir);
  size_t n_models() const;
  // Loads an SAE dir (SAELens layout, + features.json when present) for the loaded model whose
  // hook it reads: `model` names it, or "" = the one loaded model with the SAE's hook point and
  // a matching d_in (Error when none fits, or several do: then name one). name "" = the dir's
  // basename, "<model>/<basename>" when that is taken. Returns the name (the loaded one's when
  // this dir already serves that model).
  std::string add_sae(const std::string& dir, const std::string& model = "", const std::string& name = "");
  // SAEs beside the loaded models, as `./run demo` writes them: <runs>/<m>/sae/cfg.json for a
  // model loaded from <runs>/<m>/model. Named by the dir's basename, "<m>/<basename>" when two
  // share it or it is taken. Failures are reported on stderr and skipped. Returns the names.
  std::vector<std::string> add_default_saes();
  // The most capable loaded model by the rule of lab_model.h `capability` (the first loaded
  // among equals); "" when none is loaded. Requests without "model" go to it.
  std::string default_model() const;

  // Endpoints. Each throws BadRequest for client errors; anything else is a server error.
  nlohmann::json models() const;
  nlohmann::json tokenize(const nlohmann::json& req);
  nlohmann::json run(const nlohmann::json& req);
  nlohmann::json ablate(const nlohmann::json& req);
  nlohmann::json patch(const nlohmann::json& req);
  nlohmann::json steer(const nlohmann::json& req);
  nlohmann::json generate(const nlohmann::json& req);
  // Features panel (endpoints_features.cpp): per-token latents, feature page, feature search,
  // clamp and ablate (steer with a feature goes through steer()).
  nlohmann::json feature_tokens(const nlohmann::json& req);
  nlohmann::json feature_page(const nlohmann::json& req);
  nlohmann::json feature_search(const nlohmann::json& req);
  nlohmann::json feature_intervention(const nlohmann::json& req, const std::string& kind);

  // Dispatch by endpoint name ("run", ...); BadRequest(404) for an unknown one.
  nlohmann::json handle(const std::string& endpoint, const nlohmann::json& req);

  const LabLimits& limits() const { return limits_; }

 private:
  LabModel& model_for(const nlohmann::json& req);
  const LabModel* default_model_locked() const;
  // The SAE named `name` (404 naming `key` when unknown) and the model it serves; when the
  // request names another model, a 400 naming `key` (that model lacks its hook, or is not its model).
  std::pair<LabModel*, LabSae*> sae_for(const nlohmann::json& req, const std::string& name, const std::string& key);
  bool sae_name_taken_locked(const std::string& name) const;

  LabLimits limits_;
  std::unique_ptr<data::Tokenizer> tok_;
  std::shared_ptr<std::mutex> tok_mu_;  // the tokenizer's word cache is not documented thread-safe
  mutable std::mutex models_mu_;
  std::vector<std::unique_ptr<LabModel>> models_;
};

}  // namespace circuitlab::server
