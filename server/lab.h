// The lab's back end without HTTP: loaded models, the tokenizer, and one function per API
// endpoint taking and returning JSON (tokenize, run, ablate, patch, steer, generate, models).
// Not the HTTP layer (http_server.h) and not a model loader (models/model_dir.h).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace circuitlab::data {
class Tokenizer;
}

namespace circuitlab::server {

// A request the client got wrong: HTTP status (400, 404, 413) and a one-line message.
class BadRequest : public std::runtime_error {
 public:
  BadRequest(int status, const std::string& msg) : std::runtime_error(msg), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Size bounds that keep every request bounded in time and memory.
struct LabLimits {
  int max_text_bytes = 20000;       // any prompt field
  int max_new_tokens = 200;         // steer / generate
  int max_top_k = 50;               // predictions per position
  int64_t max_attention_values = 8'000'000;  // L*H*T*T returned by `run`
  int max_patch_tokens = 128;
  int64_t max_patch_cells = 20000;  // patched forward passes in one `patch`
};

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

  // Endpoints. Each throws BadRequest for client errors; anything else is a server error.
  nlohmann::json models() const;
  nlohmann::json tokenize(const nlohmann::json& req);
  nlohmann::json run(const nlohmann::json& req);
  nlohmann::json ablate(const nlohmann::json& req);
  nlohmann::json patch(const nlohmann::json& req);
  nlohmann::json steer(const nlohmann::json& req);
  nlohmann::json generate(const nlohmann::json& req);

  // Dispatch by endpoint name ("run", ...); BadRequest(404) for an unknown one.
  nlohmann::json handle(const std::string& endpoint, const nlohmann::json& req);

  const LabLimits& limits() const { return limits_; }

  struct Model;  // defined in lab.cpp

 private:
  Model& model_for(const nlohmann::json& req);
  std::vector<int64_t> encode(const Model& m, const std::string& text, bool prepend_bos);
  nlohmann::json token_list(const Model& m, const std::vector<int64_t>& ids) const;
  std::string token_str(const Model& m, int64_t id) const;
  std::string decode(const Model& m, const std::vector<int64_t>& ids) const;

  LabLimits limits_;
  std::unique_ptr<data::Tokenizer> tok_;
  mutable std::mutex tok_mu_;  // the tokenizer's word cache is not documented thread-safe
  mutable std::mutex models_mu_;
  std::vector<std::unique_ptr<Model>> models_;
};

}  // namespace circuitlab::server
