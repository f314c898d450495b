// The lab's interventions (see interventions.h).
#include "analysis/interventions.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "analysis/logit_lens.h"
#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

torch::Tensor kl_divergence(const torch::Tensor& p_logits, const torch::Tensor& q_logits) {
  TORCH_CHECK(p_logits.sizes() == q_logits.sizes(), "kl_divergence: logits of different shapes");
  const auto dt = p_logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto lp = torch::log_softmax(p_logits.to(dt), -1), lq = torch::log_softmax(q_logits.to(dt), -1);
  return (lp.exp() * (lp - lq)).sum(-1);
}

InspectedRun inspect(models::HookedTransformer& model, const torch::Tensor& tokens,
                     const std::vector<HeadRef>& heads, AblationKind kind, bool want_patterns, int lens_top_k) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) == 1, "inspect: tokens must be [1,T]");
  const auto& cfg = model->cfg();
  torch::NoGradGuard ng;
  const models::hooks::is_kind is_pattern("pattern");
  torch::Tensor logits;
  models::ActivationCache cache;
  {
    models::HookGuard guard(model);  // the ablation's hooks for this one pass
    if (!heads.empty())
      for (auto& [name, fn] : head_ablation_hooks(model, tokens, heads, kind)) guard.add(name, fn);
    std::tie(logits, cache) = models::run_with_cache(model, tokens, [&](const std::string& n) {
      return residual_stage_filter(cfg, n) || (want_patterns && is_pattern(n));
    });
  }
  InspectedRun r;
  const int64_t T = tokens.size(1);
  r.logits = logits[0];  // [T,V]
  auto probs = torch::softmax(r.logits.to(torch::kFloat), -1);
  r.next_token_prob = T >= 2 ? probs.slice(0, 0, T - 1).gather(1, tokens[0].slice(0, 1).unsqueeze(1)).squeeze(1)
                             : torch::zeros({0});
  r.loss = T >= 2 ? next_token_loss(logits, tokens) : std::nan("");
  r.stages = residual_stages(cfg, cache).select(1, 0);  // [L+1,T,D]
  // Stage by stage: the [L+1, T, V] lens logits are never whole.
  std::vector<torch::Tensor> ids, ps;
  for (int64_t s = 0; s < r.stages.size(0); ++s) {
    auto lp = torch::softmax(apply_final_ln_and_unembed(model, r.stages[s]).to(torch::kFloat), -1);  // [T,V]
    auto [v, i] = lp.topk(std::min<int64_t>(lens_top_k, lp.size(-1)), -1);
    ps.push_back(v);
    ids.push_back(i);
  }
  r.lens_ids = torch::stack(ids);
  r.lens_probs = torch::stack(ps);
  if (want_patterns) {
    std::vector<torch::Tensor> pats;
    for (int l = 0; l < cfg.n_layers; ++l) pats.push_back(cache.at(models::hooks::pattern(l))[0]);  // [H,T,T]
    r.patterns = pats.empty() ? torch::zeros({0, cfg.n_heads, tokens.size(1), tokens.size(1)}) : torch::stack(pats);
  }
  return r;
}

AblationComparison compare_ablation(models::HookedTransformer& model, const torch::Tensor& tokens,
                                    const std::vector<HeadRef>& heads, AblationKind kind) {
  if (tokens.dim() != 2 || tokens.size(0) != 1 || tokens.size(1) < 2)
    fail("compare_ablation: need tokens [1,T] with T >= 2 to measure a loss");
  torch::NoGradGuard ng;
  auto clean = model->forward(tokens);                               // [1,T,V]
  auto ablated = run_with_ablated_heads(model, tokens, heads, kind);  // [1,T,V]
  AblationComparison c;
  c.clean_logits = clean[0];
  c.ablated_logits = ablated[0];
  c.clean_losses = next_token_losses(clean, tokens)[0];
  c.ablated_losses = next_token_losses(ablated, tokens)[0];
  c.kl = kl_divergence(c.clean_logits, c.ablated_logits);
  return c;
}

HookedGeneration generate_with_and_without(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                                           const SamplingParams& sampling,
                                           const std::vector<std::pair<std::string, models::HookFn>>& hooks) {
  HookedGeneration g;
  g.plain = generate(model, prompt, sampling);
  g.changed = generate(model, prompt, sampling, hooks);
  return g;
}

SteeredGeneration actadd_generate(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                                  const std::vector<int64_t>& add, const std::vector<int64_t>& sub, int layer,
                                  double coefficient, int64_t pad_id, const SamplingParams& sampling) {
  SteeredGeneration g;
  g.vector = actadd_vector(model, add, sub.empty() ? std::vector<int64_t>{pad_id} : sub, layer, pad_id);
  auto both = generate_with_and_without(model, prompt, sampling,
                                       {{actadd_hook_name(model->cfg(), layer), steering_hook(g.vector, coefficient)}});
  g.unsteered = std::move(both.plain);
  g.steered = std::move(both.changed);
  return g;
}

}  // namespace circuitlab::analysis
