// Attribution patching (see atp.h): a clean forward with a cache of the target hooks, a corrupted
// forward with a zero leaf added at each target hook (its gradient is ∂m/∂a), one backward, and
// per-cell sums of (a_clean − a_corrupt)·∂m/∂a. Comparison with real patching at the end.
#include "analysis/atp.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

const AtpMap& AtpResult::at(PatchTarget t) const {
  switch (t) {
    case PatchTarget::ResidPre: return resid_pre;
    case PatchTarget::AttnOut: return attn_out;
    case PatchTarget::Head: return head;
    case PatchTarget::HeadPos: return head_pos;
  }
  fail("attribution_patching: unknown patch target");
}

namespace {

void check_tokens(const torch::Tensor& t, const std::string& field, int64_t d_vocab) {
  if (!t.defined() || t.dim() != 2 || t.size(0) != 1 || t.size(1) < 1)
    fail("attribution_patching: " + field + " must be token ids of shape [1,T] with T >= 1");
  if (t.scalar_type() != torch::kLong) fail("attribution_patching: " + field + " must be int64 token ids");
  const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
  if (lo < 0 || hi >= d_vocab)
    fail("attribution_patching: " + field + " token id " + std::to_string(lo < 0 ? lo : hi) +
         " outside the model's vocabulary [0, " + std::to_string(d_vocab) + ")");
}

void check_inputs(models::HookedTransformer& model, const torch::Tensor& clean, const torch::Tensor& corrupt,
                  int64_t correct, int64_t incorrect) {
  const auto& cfg = model->cfg();
  check_tokens(clean, "clean", cfg.d_vocab);
  check_tokens(corrupt, "corrupt", cfg.d_vocab);
  if (clean.size(1) != corrupt.size(1))
    fail("attribution_patching: clean and corrupt must have the same number of tokens (clean " +
         std::to_string(clean.size(1)) + ", corrupt " + std::to_string(corrupt.size(1)) + ")");
  if (clean.size(1) > cfg.n_ctx)
    fail("attribution_patching: clean has " + std::to_string(clean.size(1)) + " tokens, more than n_ctx " +
         std::to_string(cfg.n_ctx));
  const int64_t V = cfg.vocab_out();
  const std::pair<const char*, int64_t> answers[] = {{"correct", correct}, {"incorrect", incorrect}};
  for (const auto& [field, id] : answers)
    if (id < 0 || id >= V)
      fail(std::string("attribution_patching: ") + field + " id " + std::to_string(id) +
           " outside the output vocabulary [0, " + std::to_string(V) + ")");
}

// The target hooks of every layer, in forward order.
std::vector<std::string> target_hooks(const models::ModelConfig& cfg) {
  std::vector<std::string> names;
  for (int l = 0; l < cfg.n_layers; ++l) {
    names.push_back(models::hooks::resid_pre(l));
    names.push_back(models::hooks::z(l));
    names.push_back(models::hooks::attn_out(l));
    if (!cfg.attn_only) names.push_back(models::hooks::mlp_out(l));
  }
  return names;
}

AtpMap make_map(const torch::Tensor& attribution, double clean_d, double corrupt_d) {
  AtpMap m;
  m.attribution = attribution.to(torch::kCPU, torch::kFloat);
  m.patched_logit_diff = m.attribution + corrupt_d;
  const double denom = clean_d - corrupt_d;
  if (std::abs(denom) < 1e-6)
    m.recovery = torch::full_like(m.attribution, std::numeric_limits<float>::quiet_NaN());
  else
    m.recovery = m.attribution / denom;
  return m;
}

// The corrupted run: activations (detached) and ∂m/∂a at every target hook, from one forward
// and one backward. m(corrupt) through *metric.
void corrupt_pass(models::HookedTransformer& model, const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                  const std::vector<std::string>& names, const models::ForwardOptions& fwd,
                  models::ActivationCache* acts, models::ActivationCache* grads, double* metric) {
  torch::AutoGradMode grad_on(true);
  std::map<std::string, torch::Tensor> leaves;
  std::vector<std::pair<std::string, models::HookFn>> hooks;
  for (const auto& name : names)
    hooks.emplace_back(name, [&](const torch::Tensor& act, const std::string& n) {
      (*acts)[n] = act.detach();
      auto leaf = torch::zeros_like(act).requires_grad_(true);  // a + 0: ∂m/∂leaf = ∂m/∂a
      leaves[n] = leaf;
      return std::optional<torch::Tensor>(act + leaf);
    });
  auto logits = models::run_with_hooks(model, corrupt, hooks, fwd);  // [1,T,V]
  auto last = logits[0][-1];
  auto m = last[correct] - last[incorrect];
  *metric = m.item<double>();
  std::vector<torch::Tensor> inputs;
  for (const auto& name : names) inputs.push_back(leaves.at(name));
  auto g = torch::autograd::grad({m}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                 /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < names.size(); ++i)
    (*grads)[names[i]] = g[i].defined() ? g[i].detach() : torch::zeros_like(inputs[i]).detach();
}

}  // namespace

AtpResult attribution_patching(models::HookedTransformer& model, const torch::Tensor& clean,
                               const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                               const AtpOptions& opts) {
  check_inputs(model, clean, corrupt, correct, incorrect);
  const auto& cfg = model->cfg();
  const int64_t L = cfg.n_layers, H = cfg.n_heads, T = clean.size(1);
  const auto names = target_hooks(cfg);
  const std::set<std::string> wanted(names.begin(), names.end());

  AtpResult r;
  models::ActivationCache clean_cache;
  {
    torch::NoGradGuard ng;
    auto [logits, cache] = models::run_with_cache(
        model, clean, [&](const std::string& n) { return wanted.count(n) > 0; }, opts.clean_forward);
    auto last = logits[0][-1];
    r.clean_logit_diff = (last[correct] - last[incorrect]).item<double>();
    clean_cache = std::move(cache);
  }
  models::ActivationCache corrupt_acts, grads;
  corrupt_pass(model, corrupt, correct, incorrect, names, opts.corrupt_forward, &corrupt_acts, &grads,
               &r.corrupt_logit_diff);

  // (a_clean − a_corrupt) ⊙ ∂m/∂a in float64, batch row 0: [T,D] or [T,H,Dh].
  auto contrib = [&](const std::string& name) {
    auto d = clean_cache.at(name)[0].to(torch::kDouble) - corrupt_acts.at(name)[0].to(torch::kDouble);
    return d * grads.at(name)[0].to(torch::kDouble);
  };
  auto opt = torch::TensorOptions().dtype(torch::kDouble).device(clean_cache.begin()->second.device());
  auto resid = torch::zeros({L, T}, opt), attn = torch::zeros({L, T}, opt), mlp = torch::zeros({L, T}, opt);
  auto head_pos = torch::zeros({L * H, T}, opt);
  for (int l = 0; l < L; ++l) {
    resid[l] = contrib(models::hooks::resid_pre(l)).sum(-1);
    attn[l] = contrib(models::hooks::attn_out(l)).sum(-1);
    if (!cfg.attn_only) mlp[l] = contrib(models::hooks::mlp_out(l)).sum(-1);
    head_pos.slice(0, l * H, (l + 1) * H) = contrib(models::hooks::z(l)).sum(-1).transpose(0, 1);  // [H,T]
  }
  const double c = r.clean_logit_diff, x = r.corrupt_logit_diff;
  r.resid_pre = make_map(resid, c, x);
  r.attn_out = make_map(attn, c, x);
  if (!cfg.attn_only) r.mlp_out = make_map(mlp, c, x);
  r.head_pos = make_map(head_pos, c, x);
  r.head = make_map(head_pos.sum(-1).view({L, H}), c, x);
  return r;
}

AtpComparison compare_atp_with_patching(const AtpMap& atp, const PatchResult& real, int k) {
  if (!atp.patched_logit_diff.defined() || !real.patched_logit_diff.defined())
    fail("compare_atp_with_patching: both maps must be computed");
  if (atp.patched_logit_diff.sizes() != real.patched_logit_diff.sizes())
    fail("compare_atp_with_patching: AtP map and patching result differ in shape");
  const int64_t cols = atp.patched_logit_diff.size(-1);
  auto a = atp.patched_logit_diff.to(torch::kCPU, torch::kDouble).flatten();
  auto b = real.patched_logit_diff.to(torch::kCPU, torch::kDouble).flatten();
  auto keep = torch::isfinite(a).logical_and(torch::isfinite(b));
  auto idx = keep.nonzero().flatten();  // [N]
  AtpComparison out;
  out.cells = idx.size(0);
  auto av = a.index_select(0, idx), bv = b.index_select(0, idx);
  out.pearson = std::numeric_limits<double>::quiet_NaN();
  if (out.cells >= 2) {
    auto ac = av - av.mean(), bc = bv - bv.mean();
    const double den = std::sqrt((ac * ac).sum().item<double>() * (bc * bc).sum().item<double>());
    if (den > 0) out.pearson = (ac * bc).sum().item<double>() / den;
  }
  const int64_t n = std::min<int64_t>(std::max(k, 0), out.cells);
  if (n > 0) {
    auto top = std::get<1>((av - bv).abs().topk(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = top[i].item<int64_t>(), flat = idx[j].item<int64_t>();
      out.worst.push_back({flat / cols, flat % cols, av[j].item<double>(), bv[j].item<double>()});
    }
  }
  return out;
}

}  // namespace circuitlab::analysis
