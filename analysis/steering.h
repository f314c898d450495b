// Activation addition (ActAdd; Turner et al. 2023, "Steering Language Models With Activation
// Engineering"): steering vector = resid_pre[layer](prompt_add) - resid_pre[layer](prompt_sub),
// the shorter prompt padded with a pad token, added (times a coefficient) to the first positions
// of the user's prompt on every forward pass; plus the seeded sampler both generations share.
// Not a trained steering method (no CAA / probes).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

struct SamplingParams {
  int max_new_tokens = 20;
  double temperature = 1.0;  // 0: greedy
  int top_k = 0;             // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  uint64_t seed = 0;
};

// Autoregressive generation without a KV cache (every step re-runs the last n_ctx tokens, so
// position-anchored hooks such as ActAdd see the whole prompt each time). prompt: model ids.
// Returns only the new ids. `hooks` stay installed for every step.
std::vector<int64_t> generate(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                              const SamplingParams& params,
                              const std::vector<std::pair<std::string, models::HookFn>>& hooks = {});

// Picks one id from logits [V] as `params` say, drawing from `rng_state` (a splitmix64 state,
// advanced). Deterministic for a given state.
int64_t sample_token(const torch::Tensor& logits, const SamplingParams& params, uint64_t& rng_state);

// The ids sample_token draws from, ascending: the top_k most likely, then the smallest nucleus
// holding at least top_p of the probability (softmax(logits / temperature)), under the strict
// order "higher probability first, ties by lower id". Every id when no filter applies.
std::vector<int64_t> sampling_kept_ids(const torch::Tensor& logits, const SamplingParams& params);

// Steering vector [Ts,D] (Ts = the longer of the two prompts): resid_pre at `layer`
// (0..n_layers; n_layers means the final resid_post) of add minus sub, the shorter one right-padded with `pad_id`.
torch::Tensor actadd_vector(models::HookedTransformer& model, std::vector<int64_t> add, std::vector<int64_t> sub,
                            int layer, int64_t pad_id);

// Hook name where actadd_vector reads and steering_hook adds.
std::string actadd_hook_name(const models::ModelConfig& cfg, int layer);

// Hook adding coefficient * vector [Ts,D] to positions 0..min(T,Ts)-1 of every sequence.
models::HookFn steering_hook(torch::Tensor vector, double coefficient);

}  // namespace circuitlab::analysis
