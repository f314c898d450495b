// Head scores read off attention patterns on chosen inputs: previous-token, current-token and
// first-token (on text, or on random tokens without data), duplicate-token and induction
// (ARENA layout [BOS, r, r]), Olsson et al.'s prefix-matching and copying evaluators
// ([start] + 25 random tokens × 4 repeats). Means over the batch. Not weight-based: see
// eigen_positivity.h for the circuits.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/circuit_weights.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

// The ids random-token evaluators draw from, in the model's own vocabulary: never the compact
// "other" id nor BOS. `trimmed` also drops the most and least common ids (Olsson et al.).
struct TokenPools {
  std::vector<int64_t> all;      // every usable id
  std::vector<int64_t> trimmed;  // without the `exclude_frac` most and least common
  std::optional<int64_t> bos;    // model id of <|endoftext|> (50256) when the vocabulary has it
  bool trimmed_by_counts = false;  // false: no counts were available, trimmed == all
};
// counts: occurrences per model id (size d_vocab) or empty.
TokenPools make_token_pools(const models::ModelConfig& cfg, const std::optional<data::VocabMap>& vmap,
                            const std::vector<uint64_t>& counts, double exclude_frac = 0.05);

struct HeadScoreOptions {
  int induction_seq_len = 50;   // ARENA
  int induction_batch = 10;
  int prefix_len = 25;          // Olsson et al.
  int prefix_repeats = 4;
  int prefix_batch = 10;
  uint64_t seed = 0;
};

struct HeadScores {
  int L = 0, H = 0;
  // [L*H] each, layer-major
  std::vector<double> prev_token, current_token, first_token, duplicate, induction, prefix_matching, copying;
  std::string prev_token_input;  // "text" or "random tokens"
  torch::Tensor rep_tokens;      // [B, 1+2S] the induction sequences used
};

// [BOS, r, r] with r uniform over pools.all: [batch, 1 + 2·seq_len] (no BOS column without one).
torch::Tensor repeated_random_tokens(const TokenPools& pools, int seq_len, int batch, uint64_t seed);
// [start] + r × repeats, r = `len` distinct ids from pools.trimmed: [batch, 1 + len·repeats].
torch::Tensor prefix_matching_tokens(const TokenPools& pools, int len, int repeats, int batch, uint64_t seed);

// Pattern scores from patterns [B, H, T, T] of one layer (the plain definitions, also used by
// the phase tracker). Each returns [H].
std::vector<double> offset_score(const torch::Tensor& pattern, int offset);  // mean of A[i, i-offset], i ≥ max(offset,1)
std::vector<double> first_token_score(const torch::Tensor& pattern);        // mean of A[i, 0], i ≥ 1
// Mean over queries of the attention mass on key positions in targets[b][i] (empty rows skipped).
std::vector<double> target_mass_score(const torch::Tensor& pattern, const std::vector<std::vector<std::vector<int>>>& targets);

// text: [B, T] model ids of natural text for prev/current/first-token scores, or undefined
// (then the induction sequences are used). w: folded weights (copying evaluator's W_U').
HeadScores compute_head_scores(models::HookedTransformer& model, const CircuitWeights& w, const TokenPools& pools,
                               const torch::Tensor& text, const HeadScoreOptions& opts);

}  // namespace circuitlab::analysis
