// Bigram statistics: the model's direct path W_E·W_U (the whole model when it has zero
// layers; paper eq. "T = W_U W_E") as a next-token table, beside the corpus's empirical
// bigrams counted from a token shard: top-k lists, top-1 agreement and KL(corpus ‖ model).
// Not a language model evaluation: positions and attention are left out by definition.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/config.h"

namespace circuitlab::analysis {

struct BigramCounts {
  std::vector<uint64_t> unigram;  // [d_vocab] occurrences per model id (counted part)
  std::unordered_map<int64_t, std::unordered_map<int64_t, uint64_t>> next;  // source -> next -> count
  uint64_t tokens_counted = 0;
};
// Counts bigrams whose source is among the `max_sources` most frequent model ids, over the
// first `max_tokens` tokens of the shard (ids mapped to compact ids when vmap is given).
BigramCounts count_bigrams(const data::TokenShard& shard, const std::optional<data::VocabMap>& vmap, int d_vocab,
                           int max_sources, uint64_t max_tokens);

// Direct-path logits [n, V_out] for source tokens (model ids): ln_final(W_E[t])·W_U + b_U
// with the model's real final LayerNorm (when it has one); no positional embedding.
torch::Tensor direct_path_logits(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd,
                                 const std::vector<int64_t>& tokens);

struct BigramRow {
  int64_t token = 0;
  std::optional<uint64_t> corpus_count;
  std::vector<std::pair<int64_t, double>> model_top;                   // (id, logprob)
  std::optional<std::vector<std::pair<int64_t, double>>> corpus_top;   // (id, prob)
};
struct BigramTable {
  std::string source;  // "zero_layer_model" | "direct_path"
  int top_k = 10;
  std::vector<BigramRow> rows;
  std::optional<int64_t> n_sources_compared;
  std::optional<double> top1_agreement, kl_corpus_model;
  std::optional<uint64_t> tokens_counted;
};
// counts may be null (no data): rows are then the first n_rows usable ids.
BigramTable bigram_table(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd,
                         const BigramCounts* counts, const std::vector<int64_t>& usable_ids, int n_rows, int top_k,
                         int min_count = 20);

}  // namespace circuitlab::analysis
