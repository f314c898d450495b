// Head ablation through hook_z hooks (see ablation.h).
#include "analysis/ablation.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

AblationKind ablation_kind_from_string(const std::string& s) {
  if (s == "zero") return AblationKind::Zero;
  if (s == "mean") return AblationKind::Mean;
  fail("ablation kind: expected \"zero\" or \"mean\", got \"" + s + "\"");
}

std::vector<std::pair<std::string, models::HookFn>> head_ablation_hooks(models::HookedTransformer& model,
                                                                        const torch::Tensor& tokens,
                                                                        const std::vector<HeadRef>& heads,
                                                                        AblationKind kind) {
  const auto& cfg = model->cfg();
  std::map<int, std::vector<int>> by_layer;
  for (const auto& h : heads) {
    if (h.layer < 0 || h.layer >= cfg.n_layers)
      fail("head L" + std::to_string(h.layer) + "H" + std::to_string(h.head) + ": layer out of range (model has " +
           std::to_string(cfg.n_layers) + " layers)");
    if (h.head < 0 || h.head >= cfg.n_heads)
      fail("head L" + std::to_string(h.layer) + "H" + std::to_string(h.head) + ": head out of range (model has " +
           std::to_string(cfg.n_heads) + " heads per layer)");
    by_layer[h.layer].push_back(h.head);
  }
  // Mean ablation: per-layer mean of z over batch and positions, [H,Dh].
  std::map<int, torch::Tensor> means;
  if (kind == AblationKind::Mean && !by_layer.empty()) {
    torch::NoGradGuard ng;
    auto [logits, cache] = models::run_with_cache(model, tokens, [&](const std::string& n) {
      for (const auto& [l, _] : by_layer)
        if (n == models::hooks::z(l)) return true;
      return false;
    });
    for (const auto& [l, _] : by_layer) {
      const auto& z = cache.at(models::hooks::z(l));  // [B,T,H,Dh]
      means[l] = z.mean(std::vector<int64_t>{0, 1});  // [H,Dh]
    }
  }
  std::vector<std::pair<std::string, models::HookFn>> hooks;
  for (const auto& [layer, hs] : by_layer) {
    torch::Tensor mean = means.count(layer) ? means[layer] : torch::Tensor();
    std::vector<int> head_list = hs;
    hooks.emplace_back(models::hooks::z(layer), [head_list, mean](const torch::Tensor& z, const std::string&) {
      TORCH_CHECK(z.dim() == 4, "hook_z: expected [B,T,H,Dh], got ", z.sizes());
      auto out = z.clone();  // [B,T,H,Dh]
      for (int h : head_list) {
        if (mean.defined())
          out.select(2, h).copy_(mean[h].expand_as(out.select(2, h)));
        else
          out.select(2, h).zero_();
      }
      return std::optional<torch::Tensor>(out);
    });
  }
  return hooks;
}

torch::Tensor run_with_ablated_heads(models::HookedTransformer& model, const torch::Tensor& tokens,
                                     const std::vector<HeadRef>& heads, AblationKind kind) {
  torch::NoGradGuard ng;
  auto hooks = head_ablation_hooks(model, tokens, heads, kind);
  return models::run_with_hooks(model, tokens, hooks);
}

torch::Tensor next_token_losses(const torch::Tensor& logits, const torch::Tensor& tokens) {
  TORCH_CHECK(logits.dim() == 3 && tokens.dim() == 2 && logits.size(0) == tokens.size(0) &&
                  logits.size(1) == tokens.size(1),
              "next_token_losses: expected logits [B,T,V] and tokens [B,T], got ", logits.sizes(), " and ",
              tokens.sizes());
  TORCH_CHECK(tokens.size(1) >= 2, "next_token_losses: need at least 2 tokens, got ", tokens.size(1));
  const int64_t T = tokens.size(1);
  auto logp = torch::log_softmax(logits.slice(1, 0, T - 1).to(torch::kFloat), /*dim=*/-1);  // [B,T-1,V]
  auto target = tokens.slice(1, 1, T).to(torch::kLong).unsqueeze(-1);                      // [B,T-1,1]
  return -logp.gather(-1, target).squeeze(-1);                                              // [B,T-1]
}

double next_token_loss(const torch::Tensor& logits, const torch::Tensor& tokens) {
  return next_token_losses(logits, tokens).mean().item<double>();
}

}  // namespace circuitlab::analysis
