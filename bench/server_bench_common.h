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

#include <nlohmann/json.hpp>

#include "core/file_io.h"
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
  // The stand-in takes the attn2l preset's model section (configs/attn2l.json) as it is.
  auto preset = nlohmann::json::parse(read_file("configs/attn2l.json"));
  models::ModelConfig cfg = models::config_from_json(preset.at("model"), "configs/attn2l.json");
  auto tok = data::Tokenizer::load_default();
  std::set<int32_t> ids{data::kEndOfText, 220};
  for (int32_t id : tok.encode(std::string(kText))) ids.insert(id);
  for (int32_t i = 0; int32_t(ids.size()) < cfg.d_vocab - 1; ++i) ids.insert(i);  // + "other" = d_vocab
  data::VocabMap vm(std::vector<int32_t>(ids.begin(), ids.end()));
  cfg.d_vocab = cfg.d_vocab_out = vm.size();
  torch::manual_seed(0);
  models::HookedTransformer model(cfg);
  models::save_model_dir(model, scratch, &vm);
  std::fprintf(stderr,
               "model: runs/attn2l/model not found; measuring a random-weight stand-in with the attn2l preset's "
               "shape (%dL x %dH, d_model %d, n_ctx %d, vocab %d) in %s\n",
               cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.n_ctx, cfg.d_vocab, scratch.c_str());
  return scratch;
}

}  // namespace circuitlab::benchsrv
