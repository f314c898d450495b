// SAE evaluation (SAELens's metrics, whole-sample explained variance). See sae_eval.h.
#include "analysis/sae_eval.h"

#include <algorithm>

#include "core/error.h"
#include "data/batches.h"

namespace circuitlab::analysis {

SaeEvalResult evaluate_sae(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                           std::shared_ptr<const data::TokenShard> shard, const std::optional<data::VocabMap>& vocab_map,
                           const SaeEvalOptions& opt) {
  const models::SaeConfig& c = sae.cfg;
  if (!model->has_hook_point(c.hook_name))
    fail("sae eval: the SAE's hook '" + c.hook_name + "' is not a hook point of this model");
  if (opt.tokens < 1) fail("tokens: must be >= 1 (zero tokens to evaluate)");
  const int64_t n_ctx = model->cfg().n_ctx;
  int64_t T = opt.context > 0 ? opt.context : (c.context_size > 0 ? c.context_size : 128);
  T = std::min<int64_t>(T, n_ctx);
  const int64_t windows = std::max<int64_t>(1, opt.tokens / T);
  data::EvalWindows ew(std::move(shard), opt.batch_windows, T, windows, vocab_map);
  torch::NoGradGuard ng;
  model->eval();

  const int64_t S = c.d_sae, d = c.d_in;
  double sum_sq_err = 0, sum_sq = 0, cos_sum = 0, ratio_sum = 0, l0_sum = 0;
  torch::Tensor sum_x = torch::zeros({d}, torch::kDouble);
  torch::Tensor fire = torch::zeros({S}, torch::kDouble);
  double ce_clean = 0, ce_sae = 0, ce_zero = 0, kl_sae = 0, kl_zero = 0;
  int64_t n_tok = 0, n_pred = 0;
  torch::Tensor x_tok, y_tok;
  while (ew.next(x_tok, y_tok)) {
    // Clean run, caching the hook.
    auto [logits, cache] = models::run_with_cache(model, x_tok, [&](const std::string& n) { return n == c.hook_name; });
    const torch::Tensor act = cache.at(c.hook_name);
    const torch::Tensor x = models::sae_input_from_hook(act, c);  // [N, d]
    const torch::Tensor f = sae.encode(x);                        // [N, S]
    const torch::Tensor x_hat = sae.decode(f);
    const torch::Tensor xd = x.to(torch::kDouble), xh = x_hat.to(torch::kDouble);
    sum_sq_err += (xh - xd).pow(2).sum().item<double>();
    sum_sq += xd.pow(2).sum().item<double>();
    sum_x += xd.sum(0);
    const torch::Tensor nx = xd.norm(2, 1), nh = xh.norm(2, 1);
    cos_sum += ((xd * xh).sum(1) / (nx * nh).clamp_min(1e-30)).sum().item<double>();
    ratio_sum += (nh / nx.clamp_min(1e-30)).sum().item<double>();
    const torch::Tensor active = (f > 0);
    l0_sum += active.sum().item<double>();
    fire += active.sum(0).to(torch::kDouble);
    n_tok += x.size(0);

    // Spliced runs: the reconstruction, and zeros, at the hook.
    const torch::Tensor recon_act = models::sae_output_to_hook(x_hat, act, c);
    const torch::Tensor zero_act = models::sae_output_to_hook(torch::zeros_like(x_hat), act, c);
    const torch::Tensor l_sae = models::run_with_hooks(
        model, x_tok, {{c.hook_name, [&](const torch::Tensor&, const std::string&) { return std::optional<torch::Tensor>(recon_act); }}});
    const torch::Tensor l_zero = models::run_with_hooks(
        model, x_tok, {{c.hook_name, [&](const torch::Tensor&, const std::string&) { return std::optional<torch::Tensor>(zero_act); }}});
    // Per-token sums in float32 over the vocabulary (the [N, V] tensors are the big ones), the
    // totals over tokens in double.
    const int64_t V = logits.size(-1);
    const torch::Tensor lp_clean = torch::log_softmax(logits.reshape({-1, V}), -1);
    const torch::Tensor lp_sae = torch::log_softmax(l_sae.reshape({-1, V}), -1);
    const torch::Tensor lp_zero = torch::log_softmax(l_zero.reshape({-1, V}), -1);
    const torch::Tensor tgt = y_tok.reshape({-1, 1});
    ce_clean += -lp_clean.gather(1, tgt).to(torch::kDouble).sum().item<double>();
    ce_sae += -lp_sae.gather(1, tgt).to(torch::kDouble).sum().item<double>();
    ce_zero += -lp_zero.gather(1, tgt).to(torch::kDouble).sum().item<double>();
    const torch::Tensor p_clean = lp_clean.exp();
    kl_sae += (p_clean * (lp_clean - lp_sae)).sum(1).to(torch::kDouble).sum().item<double>();
    kl_zero += (p_clean * (lp_clean - lp_zero)).sum(1).to(torch::kDouble).sum().item<double>();
    n_pred += tgt.size(0);
  }
  SaeEvalResult r;
  r.tokens = n_tok;
  const double N = static_cast<double>(n_tok);
  const double total_var = sum_sq - sum_x.pow(2).sum().item<double>() / N;  // Σ‖x − x̄‖²
  r.explained_variance = total_var > 0 ? 1.0 - sum_sq_err / total_var : 0.0;
  r.mse = sum_sq_err / (N * d);
  r.cosine = cos_sum / N;
  r.l2_ratio = ratio_sum / N;
  r.l0 = l0_sum / N;
  r.ce_clean = ce_clean / n_pred;
  r.ce_sae = ce_sae / n_pred;
  r.ce_zero = ce_zero / n_pred;
  const double ce_den = r.ce_zero - r.ce_clean;
  r.ce_loss_score = ce_den != 0 ? (r.ce_zero - r.ce_sae) / ce_den : 0.0;
  r.kl_sae = kl_sae / n_pred;
  r.kl_zero = kl_zero / n_pred;
  r.kl_score = r.kl_zero != 0 ? (r.kl_zero - r.kl_sae) / r.kl_zero : 0.0;
  const torch::Tensor density = fire / N;
  r.frac_dead = (fire == 0).to(torch::kDouble).mean().item<double>();
  r.frac_dense_1pct = (density > 0.01).to(torch::kDouble).mean().item<double>();
  r.frac_dense_10pct = (density > 0.10).to(torch::kDouble).mean().item<double>();
  return r;
}

}  // namespace circuitlab::analysis
