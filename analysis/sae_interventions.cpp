// Interventions with an SAE's latents (see sae_interventions.h).
#include "analysis/sae_interventions.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/run_to_hook.h"

namespace circuitlab::analysis {

namespace {
void check_feature(const models::SparseAutoencoder& sae, int64_t feature) {
  if (feature < 0 || feature >= sae.cfg.d_sae)
    fail("SAE latent " + std::to_string(feature) + " is out of range (d_sae " + std::to_string(sae.cfg.d_sae) + ")");
}

// The SAE's tensors on the activation's device (a no-op on the CPU).
torch::Tensor on(const torch::Tensor& t, const torch::Tensor& act) { return t.to(act.device(), torch::kFloat); }
}  // namespace

torch::Tensor sae_latents(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                          const torch::Tensor& tokens) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) == 1, "sae_latents: tokens must be [1,T]");
  const std::string& hook = sae.cfg.hook_name;
  if (!model->has_hook_point(hook)) fail("the model has no hook point '" + hook + "' (the SAE's hook_name)");
  torch::NoGradGuard ng;
  // Nothing after the hook is computed (no logits needed).
  auto x = models::sae_input_from_hook(models::run_to_hook(model, tokens, hook), sae.cfg).cpu();  // [T, d_in]
  return sae.encode(x);                                                  // [T, S]
}

models::HookFn sae_steering_hook(const models::SparseAutoencoder& sae, int64_t feature, double coefficient) {
  check_feature(sae, feature);
  const models::SaeConfig cfg = sae.cfg;
  const torch::Tensor row = sae.W_dec[feature] * coefficient;  // [d_in]
  return [cfg, row](const torch::Tensor& act, const std::string&) {
    auto x = models::sae_input_from_hook(act, cfg);  // [N, d_in], N = B·T
    return std::optional<torch::Tensor>(models::sae_output_to_hook(x + on(row, act), act, cfg));
  };
}

models::HookFn sae_clamp_hook(const models::SparseAutoencoder& sae, std::vector<LatentClamp> clamps, int64_t position) {
  for (const auto& c : clamps) check_feature(sae, c.index);
  std::vector<int64_t> idx;
  std::vector<float> val;
  for (const auto& c : clamps) {
    idx.push_back(c.index);
    val.push_back(static_cast<float>(c.value));
  }
  const auto index = torch::tensor(idx, torch::kLong);  // [C]
  const auto values = torch::tensor(val, torch::kFloat);  // [C]
  const models::SparseAutoencoder s = sae;                 // tensor handles: cheap to copy, kept alive by the hook
  return [s, index, values, position](const torch::Tensor& act, const std::string&) {
    auto x = models::sae_input_from_hook(act, s.cfg);  // [N, d_in], N = B·T
    const auto f = s.encode(x.cpu()).index_select(1, index);  // [N, C]
    auto delta = torch::matmul(values.unsqueeze(0) - f, s.W_dec.index_select(0, index));  // [N, d_in]
    if (position >= 0) {
      const int64_t T = act.size(1);  // act [B, T, ...]
      auto mask = torch::zeros({T}, torch::kFloat);
      if (position < T) mask[position] = 1.0f;
      delta = (delta.reshape({-1, T, s.cfg.d_in}) * mask.view({1, T, 1})).reshape({-1, s.cfg.d_in});
    }
    return std::optional<torch::Tensor>(models::sae_output_to_hook(x + on(delta, act), act, s.cfg));
  };
}

FeatureIntervention run_feature_intervention(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                             const std::vector<int64_t>& prompt, const models::HookFn& hook,
                                             const SamplingParams& sampling) {
  if (!model->has_hook_point(sae.cfg.hook_name))
    fail("the model has no hook point '" + sae.cfg.hook_name + "' (the SAE's hook_name)");
  torch::NoGradGuard ng;
  const std::vector<std::pair<std::string, models::HookFn>> hooks{{sae.cfg.hook_name, hook}};
  const auto tokens = torch::tensor(prompt, torch::kLong).unsqueeze(0);  // [1,T]
  FeatureIntervention r;
  r.clean_logits = model->forward(tokens)[0];
  r.changed_logits = models::run_with_hooks(model, tokens, hooks)[0];
  r.generation = generate_with_and_without(model, prompt, sampling, hooks);
  return r;
}

}  // namespace circuitlab::analysis
