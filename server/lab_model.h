// One model as the lab holds it: the loaded model dir, its tokenizer and token namer, the lock
// its forward passes take, its default examples, and text <-> ids for it. Not an endpoint.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/token_namer.h"
#include "models/model_dir.h"
#include "server/lab_sae.h"

namespace circuitlab::data {
class Tokenizer;
}

namespace circuitlab::server {

// A text as the model reads it: its GPT-2 ids and the model ids they map to (the compact
// "other" id where the model's vocabulary lacks a GPT-2 id), BOS first when asked for.
struct EncodedText {
  std::vector<int32_t> gpt2;  // [T]
  std::vector<int64_t> ids;   // [T] model ids
};

struct LabModel {
  std::string name;
  models::LoadedModel loaded;
  std::unique_ptr<data::Tokenizer> own_tok;  // HF dirs with vocab.json + merges.txt
  const data::Tokenizer* tok = nullptr;      // own_tok or the lab's default
  std::shared_ptr<std::mutex> tok_mu;        // the tokenizer's word cache is not documented thread-safe
  std::unique_ptr<data::TokenNamer> namer;
  std::mutex mu;                             // held by every forward pass (hooks are per-model state)
  int64_t n_params = 0;
  nlohmann::json examples;                   // default_examples(*this), computed once at load
  std::vector<std::unique_ptr<LabSae>> saes;  // the SAEs reading this model's hooks (Lab::add_sae)

  const models::ModelConfig& cfg() const { return loaded.model->cfg(); }
  // GPT-2 ids of a text (no BOS).
  std::vector<int32_t> gpt2_ids(const std::string& text) const;
  // No checks: ids may be the "other" id.
  EncodedText tokenize(const std::string& text, bool prepend_bos) const;
  // tokenize + BadRequest when the ids do not fit the model (outside d_vocab without a vocab
  // map; longer than n_ctx).
  EncodedText encode(const std::string& text, bool prepend_bos) const;
  // Text of model ids; the "other" id (and ids the tokenizer lacks) by the namer's placeholder.
  std::string decode(const std::vector<int64_t>& ids) const;
  // The model id of a text that must be exactly one in-vocabulary output token; BadRequest
  // naming `field` otherwise.
  int64_t answer_token(const std::string& text, const char* field) const;
};

// Loads a model dir for the lab (Error naming the dir when it cannot be loaded).
std::unique_ptr<LabModel> load_lab_model(const std::string& dir, const std::string& name,
                                         const data::Tokenizer* default_tok, std::shared_ptr<std::mutex> default_tok_mu);

// The rule that picks the lab's default model, as a sort key: larger is more capable.
// GPT-2 family first, then models with MLPs, then the larger vocabulary (GPT-2's 50257 for
// full-vocabulary models, the compact size otherwise), then more parameters.
struct Capability {
  bool gpt2 = false;
  bool has_mlp = false;
  int64_t vocab = 0;
  int64_t n_params = 0;
  bool operator<(const Capability& o) const;
};
Capability capability(const LabModel& m);

// Per-model default examples for the front end's forms, chosen from the model's vocabulary and
// checked on the model itself (examples.cpp): {"prompt", "patching": {clean, corrupted,
// answer_correct, answer_incorrect, target}, "steering": {prompt, prompt_add, prompt_sub, layer,
// coefficient, max_new_tokens, temperature, top_p, seed, changes_generation}}.
nlohmann::json default_examples(LabModel& m);

}  // namespace circuitlab::server
