// The synthetic SAE benchmark (in the spirit of SAELens's SynthSAEBench): activations drawn from
// a known dictionary (N unit directions in d dimensions, each firing sparsely with a random
// magnitude, optionally in correlated groups), an SAE trained on them, and the recovered
// dictionary scored against the truth: MCC (mean cosine under the best one-to-one matching of
// true directions to decoder rows), the fraction of true directions some decoder row matches at
// cosine >= 0.9, explained variance and L0 on fresh samples. Not a general data generator.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "train/sae_step.h"

namespace circuitlab::train {

struct SynthOptions {
  int64_t n_features = 576;
  int64_t d = 64;
  int64_t active = 2;            // features firing per vector (exactly; bernoulli: on average)
  bool bernoulli = false;        // each feature fires independently with p = active / n_features
  double min_magnitude = 0.5, max_magnitude = 1.5;  // uniform magnitudes
  int64_t group_size = 1;        // > 1: features in groups; a firing feature's group-mates fire with p = group_p
  double group_p = 0.0;
  uint64_t seed = 0;
};

// The true dictionary [n_features, d] (rows unit norm) of `o`.
torch::Tensor synth_dictionary(const SynthOptions& o);
// Batch `index` of `n` vectors [n, d] (a pure function of (seed, index)); `codes` (optional)
// receives the true coefficients [n, n_features].
torch::Tensor synth_batch(const SynthOptions& o, const torch::Tensor& dictionary, int64_t n, uint64_t index,
                          torch::Tensor* codes = nullptr);

// Assignment maximising the total of `score` [R, C] (R <= C): for each row its column
// (Hungarian algorithm, O(R²·C)).
std::vector<int64_t> max_weight_matching(const torch::Tensor& score);

struct SynthReport {
  double mcc = 0;                 // mean cosine of matched pairs
  double recovered_fraction = 0;  // true directions with max cosine >= 0.9
  double explained_variance = 0;  // on fresh samples, over the whole sample
  double l0 = 0;                  // mean active latents per vector, fresh samples
  double dead_fraction = 0;
  int64_t steps = 0;
  double seconds = 0;
};

// Scores an SAE's decoder against the dictionary and on fresh samples.
SynthReport score_synth(const models::SparseAutoencoder& sae, const SynthOptions& o, const torch::Tensor& dictionary,
                        int64_t eval_vectors = 8192);

// Trains `cfg` (d_in = o.d) on `steps` batches of `batch` fresh vectors and scores it.
// `on_step(step, stats)` is called after each step (progress display); may be empty.
SynthReport run_synth(const SynthOptions& o, const models::SaeConfig& cfg, const SaeStepOptions& step_opt,
                      int64_t steps, int64_t batch, uint64_t seed,
                      const std::function<void(int64_t, const SaeStepStats&)>& on_step = {},
                      models::SparseAutoencoder* trained = nullptr);

}  // namespace circuitlab::train
