// The lab's interventions as typed calls: one inspected forward pass (logits, residual stages,
// attention patterns, optionally with heads ablated), a clean-vs-ablated comparison with its
// per-position KL divergence, two seeded generations without and with hooks, and an
// ActAdd-steered generation beside the plain one.
// Compositions of ablation.h, logit_lens.h and steering.h; not new analyses, and no JSON.
#pragma once
#include <cstdint>
#include <vector>

#include "analysis/ablation.h"
#include "analysis/steering.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

// KL(P || Q) of the softmaxes of two logit tensors [..., V] -> [...] (nats), in float32 or wider.
torch::Tensor kl_divergence(const torch::Tensor& p_logits, const torch::Tensor& q_logits);

struct InspectedRun {
  torch::Tensor logits;          // [T, V_out]
  torch::Tensor next_token_prob; // [T-1] probability given to the token that comes next
  double loss = 0;               // mean next-token cross entropy; NaN when T < 2
  torch::Tensor stages;          // [L+1, T, D] residual stream per stage (residual_stage_labels)
  torch::Tensor lens_ids, lens_probs;  // [L+1, T, k] logit lens top-k per stage (last stage = the model's)
  torch::Tensor patterns;        // [L, H, T, T] blocks.{l}.attn.hook_pattern; undefined unless asked
};
// One forward pass of tokens [1,T] with `heads` ablated (none: the clean run), keeping the
// residual stages, their logit lens top-`lens_top_k` and, when want_patterns, every attention pattern.
InspectedRun inspect(models::HookedTransformer& model, const torch::Tensor& tokens,
                     const std::vector<HeadRef>& heads, AblationKind kind, bool want_patterns, int lens_top_k);

struct AblationComparison {
  torch::Tensor clean_logits, ablated_logits;  // [T, V_out]
  torch::Tensor clean_losses, ablated_losses;  // [T-1] next-token cross entropy
  torch::Tensor kl;                            // [T] KL(clean || ablated) of the next-token distributions
};
// tokens [1,T], T >= 2 (Error otherwise).
AblationComparison compare_ablation(models::HookedTransformer& model, const torch::Tensor& tokens,
                                    const std::vector<HeadRef>& heads, AblationKind kind);

struct HookedGeneration {
  std::vector<int64_t> plain, changed;  // new ids only, same seed
};
// Two generations of `prompt` with the same sampling: without `hooks`, then with them installed
// on every step (steering.h `generate`).
HookedGeneration generate_with_and_without(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                                           const SamplingParams& sampling,
                                           const std::vector<std::pair<std::string, models::HookFn>>& hooks);

struct SteeredGeneration {
  std::vector<int64_t> unsteered, steered;  // new ids only, same seed
  torch::Tensor vector;                     // [Ts, D] the ActAdd vector (before the coefficient)
};
// ActAdd (steering.h): vector from add − sub at `layer` (sub empty: the pad token alone), then
// two generations of `prompt` with the same sampling, without and with coefficient × vector.
SteeredGeneration actadd_generate(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                                  const std::vector<int64_t>& add, const std::vector<int64_t>& sub, int layer,
                                  double coefficient, int64_t pad_id, const SamplingParams& sampling);

}  // namespace circuitlab::analysis
