// Shared by the server benchmarks: the model to measure (runs/attn2l/model, or a stand-in of
// the attn2l shape written with save_model_dir when the demo has not been run) and a prompt of
// an exact token count. Not a benchmark itself.
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "models/model_dir.h"

namespace circuitlab::benchsrv {

inline const char* kText =
    "The Brown Corpus was compiled in the 1960s by Henry Kucera and W. Nelson Francis at Brown University. "
    "It contains about a million words of American English prose printed in 1961, drawn from newspapers, "
    "novels, government documents and scientific writing. When Mary and John went to the store, John gave "
    "a drink to Mary, and the cat sat on the mat while the quick brown fox jumped over the lazy dog again and again.";

// A prompt of exactly n_tokens GPT-2 tokens (BOS not counted), cut from kText (repeated as needed).
inline std::string prompt_of_tokens(const data::Tokenizer& tok, int n_tokens) {
  std::string text;
  while (static_cast<int>(tok.encode(text).size()) < n_tokens) text += kText;
  auto ids = tok.encode(text);
  ids.resize(n_tokens);
  return tok.decode(ids);
}

// runs/attn2l/model when present; else a stand-in with the attn2l preset's shape (2 layers,
// attention only) on a compact vocabulary, written to `scratch`. Prints which one.
inline std::string model_dir_for_bench(const std::string& requested, const std::string& scratch) {
  if (!requested.empty()) return requested;
  if (std::filesystem::exists("runs/attn2l/model/config.json")) {
    std::fprintf(stderr, "model: runs/attn2l/model (the demo's trained attn2l)\n");
    return "runs/attn2l/model";
  }
  auto tok = data::Tokenizer::load_default();
  std::set<int32_t> ids{data::kEndOfText, 220};
  for (int32_t id : tok.encode(std::string(kText))) ids.insert(id);
  for (int32_t i = 0; ids.size() < 8191; ++i) ids.insert(i);  // a compact vocab of 8192 like the demo presets
  data::VocabMap vm(std::vector<int32_t>(ids.begin(), ids.end()));
  models::ModelConfig cfg;
  cfg.n_layers = 2;
  cfg.d_model = 256;
  cfg.n_heads = 8;
  cfg.d_head = 32;
  cfg.n_ctx = 256;
  cfg.d_vocab = cfg.d_vocab_out = vm.size();
  cfg.attn_only = true;
  torch::manual_seed(0);
  models::HookedTransformer model(cfg);
  models::save_model_dir(model, scratch, &vm);
  std::fprintf(stderr,
               "model: runs/attn2l/model not found; measuring a random-weight stand-in of the same kind "
               "(2L x 8H, d_model 256, n_ctx 256, vocab 8192) in %s\n",
               scratch.c_str());
  return scratch;
}

}  // namespace circuitlab::benchsrv
