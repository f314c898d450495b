// Logit lens (see logit_lens.h). LayerNorm written out as TransformerLens LayerNorm:
// (x - mean) / sqrt(var + eps) * w + b, biased variance over D.
#include "analysis/logit_lens.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

std::vector<std::string> residual_stage_labels(const models::ModelConfig& cfg) {
  std::vector<std::string> out{"embed"};
  for (int l = 0; l < cfg.n_layers; ++l) out.push_back("after L" + std::to_string(l));
  return out;
}

bool residual_stage_filter(const models::ModelConfig& cfg, const std::string& n) {
  if (cfg.n_layers == 0) return n == models::hooks::embed() || n == models::hooks::pos_embed();
  if (n == models::hooks::resid_pre(0)) return true;
  return models::hook_kind(n) == "resid_post";
}

torch::Tensor residual_stages(const models::ModelConfig& cfg, const models::ActivationCache& cache) {
  auto get = [&](const std::string& n) -> const torch::Tensor& {
    auto it = cache.find(n);
    TORCH_CHECK(it != cache.end(), "residual_stages: activation cache lacks ", n);
    return it->second;
  };
  std::vector<torch::Tensor> stages;  // each [B,T,D]
  if (cfg.n_layers == 0) {
    auto x = get(models::hooks::embed());
    if (!cfg.shortformer()) x = x + get(models::hooks::pos_embed());
    stages.push_back(x);
  } else {
    stages.push_back(get(models::hooks::resid_pre(0)));
    for (int l = 0; l < cfg.n_layers; ++l) stages.push_back(get(models::hooks::resid_post(l)));
  }
  return torch::stack(stages);  // [L+1,B,T,D]
}

torch::Tensor apply_final_ln_and_unembed(models::HookedTransformer& model, const torch::Tensor& x) {
  const auto& cfg = model->cfg();
  TORCH_CHECK(x.size(-1) == cfg.d_model, "logit lens: expected residual width ", cfg.d_model, ", got ", x.size(-1));
  auto sd = model->state_dict();
  auto h = x.to(torch::kFloat);
  if (cfg.has_ln()) {
    auto mu = h.mean(-1, /*keepdim=*/true);
    auto centered = h - mu;
    auto var = centered.pow(2).mean(-1, /*keepdim=*/true);
    h = centered / torch::sqrt(var + cfg.eps);
    auto w = sd.find("ln_final.w");
    auto b = sd.find("ln_final.b");
    if (w != sd.end()) h = h * w->second;
    if (b != sd.end()) h = h + b->second;
  }
  auto logits = torch::matmul(h, model->W_U());  // [..., V_out]
  auto bu = sd.find("unembed.b_U");
  if (bu != sd.end()) logits = logits + bu->second;
  return logits;
}

torch::Tensor logit_lens(models::HookedTransformer& model, const models::ActivationCache& cache) {
  torch::NoGradGuard ng;
  return apply_final_ln_and_unembed(model, residual_stages(model->cfg(), cache));
}

}  // namespace circuitlab::analysis
