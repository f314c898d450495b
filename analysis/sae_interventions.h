// Interventions with one sparse autoencoder's latents at its hook, for the lab's Features panel:
// the latents of a prompt, steering with a decoder row, and clamping / ablating latents while
// keeping the SAE's error term. Hooks for models::run_with_hooks and analysis::generate; not
// feature dashboards (sae_features.h) and not an SAE evaluation (sae_eval.h).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "analysis/interventions.h"
#include "models/hooked_transformer.h"
#include "models/sae.h"

namespace circuitlab::analysis {

// f = encode(x) of tokens [1,T] at the SAE's hook (one forward pass): [T, S] float32.
// hook_z SAEs read the heads concatenated (or head hook_head_index), as sae_input_from_hook.
torch::Tensor sae_latents(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                          const torch::Tensor& tokens);

// Hook (at sae.cfg.hook_name) adding coefficient · W_dec[feature] at every position.
models::HookFn sae_steering_hook(const models::SparseAutoencoder& sae, int64_t feature, double coefficient);

// One latent held at a value (0: ablated).
struct LatentClamp {
  int64_t index = 0;
  double value = 0;
};
// Hook (at sae.cfg.hook_name) that holds latents at values while keeping the SAE's error term:
// x' = x + Σ_i (v_i − f_i(x)) · W_dec[i], f = encode(x), at every position, or at position
// `position` only (>= 0). Clamping a latent to its own value leaves x unchanged; ablating every
// latent leaves x − Σ_i f_i(x) · W_dec[i] = (x − decode(f)) + b_dec, the error term plus b_dec.
models::HookFn sae_clamp_hook(const models::SparseAutoencoder& sae, std::vector<LatentClamp> clamps,
                              int64_t position = -1);

struct FeatureIntervention {
  HookedGeneration generation;  // without / with the hook, same seed
  torch::Tensor clean_logits;   // [T, V_out] of the prompt
  torch::Tensor changed_logits; // [T, V_out] of the prompt with the hook
};
// The prompt's logits with and without `hook` at the SAE's hook, and two seeded generations.
FeatureIntervention run_feature_intervention(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                             const std::vector<int64_t>& prompt, const models::HookFn& hook,
                                             const SamplingParams& sampling);

}  // namespace circuitlab::analysis
