// Iterated frozen-pattern ablation and per-head pattern-preserving ablations (see header).
#include "analysis/term_importance.h"

#include <cmath>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

namespace {
const char* order_label(int k) {
  switch (k) {
    case 0: return "direct path";
    case 1: return "+ individual heads";
    case 2: return "+ virtual heads (2nd order)";
    default: return "+ higher-order virtual heads";
  }
}
}  // namespace

FrozenRun frozen_run(models::HookedTransformer& model, const torch::Tensor& x, const torch::Tensor& y,
                     const std::vector<torch::Tensor>& patterns, const std::vector<torch::Tensor>* replace_z,
                     int ablate_layer, int ablate_head) {
  torch::NoGradGuard ng;
  const int L = model->cfg().n_layers;
  FrozenRun r;
  r.z.resize(L);
  std::vector<std::pair<std::string, models::HookFn>> hooks;
  for (int l = 0; l < L; ++l) {
    hooks.emplace_back(models::hooks::z(l), [&, l](const torch::Tensor& z, const std::string&) -> std::optional<torch::Tensor> {
      r.z[l] = z.detach();  // [B, T, H, Dh] as computed from this run's residual stream
      torch::Tensor out = replace_z ? (*replace_z)[l] : z;
      if (l == ablate_layer) {
        out = out.clone();
        out.select(2, ablate_head).zero_();
      }
      if (!replace_z && l != ablate_layer) return std::nullopt;
      return out;
    });
  }
  models::ForwardOptions fo;
  fo.frozen_patterns = patterns;
  torch::Tensor logits = models::run_with_hooks(model, x, hooks, fo);
  torch::Tensor per_pos = loss_by_position(logits, y);  // [T] summed over B
  r.loss = per_pos.sum().item<double>() / static_cast<double>(x.numel());
  per_pos = per_pos.contiguous();
  r.curve.assign(per_pos.data_ptr<double>(), per_pos.data_ptr<double>() + per_pos.numel());
  return r;
}

TermImportance term_importance(models::HookedTransformer& model, const std::vector<torch::Tensor>& xs,
                               const std::vector<torch::Tensor>& ys, bool per_head_icl) {
  torch::NoGradGuard ng;
  const auto& cfg = model->cfg();
  const int L = cfg.n_layers, H = cfg.n_heads;
  if (xs.empty()) fail("term importance: no evaluation windows");
  TermImportance ti;
  ti.window_len = static_cast<int>(xs[0].size(1));
  ti.uniform_loss = std::log(static_cast<double>(cfg.vocab_out()));
  std::vector<double> order_loss(L + 1, 0.0), head_loss(L * H, 0.0), full_curve(ti.window_len, 0.0);
  std::vector<std::vector<double>> head_curve(per_head_icl ? L * H : 0, std::vector<double>(ti.window_len, 0.0));
  double full = 0;
  int64_t n_tok = 0, n_win = 0;
  const models::hooks::is_kind pat_filter("pattern");
  for (size_t w = 0; w < xs.size(); ++w) {
    const torch::Tensor& x = xs[w];
    const torch::Tensor& y = ys[w];
    auto [logits, cache] = models::run_with_cache(model, x, pat_filter);
    torch::Tensor lp = loss_by_position(logits, y);
    full += lp.sum().item<double>();
    for (int t = 0; t < ti.window_len; ++t) full_curve[t] += lp[t].item<double>();
    std::vector<torch::Tensor> pats(L);
    for (int l = 0; l < L; ++l) pats[l] = cache.at(models::hooks::pattern(l));
    // Order runs: run 0 adds zeros; run k adds run k−1's outputs.
    std::vector<torch::Tensor> prev_z(L);
    for (int l = 0; l < L; ++l) {
      const auto& zs = x.sizes();
      prev_z[l] = torch::zeros({zs[0], zs[1], H, cfg.d_head}, pats[l].options());
    }
    for (int k = 0; k <= L; ++k) {
      FrozenRun r = frozen_run(model, x, y, pats, &prev_z);
      order_loss[k] += r.loss * x.numel();
      prev_z = r.z;
    }
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        FrozenRun r = frozen_run(model, x, y, pats, nullptr, l, h);
        head_loss[l * H + h] += r.loss * x.numel();
        if (per_head_icl)
          for (int t = 0; t < ti.window_len; ++t) head_curve[l * H + h][t] += r.curve[t];
      }
    n_tok += x.numel();
    n_win += x.size(0);
  }
  ti.n_tokens = n_tok;
  ti.full_loss = full / n_tok;
  double prev = ti.uniform_loss;
  for (int k = 0; k <= L; ++k) {
    TermOrder o;
    o.order = k;
    o.label = order_label(k);
    o.loss = order_loss[k] / n_tok;
    o.marginal_nats = prev - o.loss;
    prev = o.loss;
    ti.orders.push_back(o);
  }
  std::optional<IclResult> base;
  if (per_head_icl) {
    std::vector<double> c(ti.window_len);
    for (int t = 0; t < ti.window_len; ++t) c[t] = full_curve[t] / n_win;
    base = icl_from_curve(c, static_cast<int>(n_win));
  }
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      HeadAblation a;
      a.layer = l;
      a.head = h;
      a.loss_delta = head_loss[l * H + h] / n_tok - ti.full_loss;
      if (per_head_icl) {
        std::vector<double> c(ti.window_len);
        for (int t = 0; t < ti.window_len; ++t) c[t] = head_curve[l * H + h][t] / n_win;
        a.icl_delta = icl_from_curve(c, static_cast<int>(n_win)).icl_score - base->icl_score;
      }
      ti.per_head.push_back(a);
    }
  return ti;
}

}  // namespace circuitlab::analysis
