// Attention-pattern head scores (see head_scores.h). Patterns come from run_with_cache on
// the real model; every score is a mean of pattern entries picked by plain index rules.
#include "analysis/head_scores.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

TokenPools make_token_pools(const models::ModelConfig& cfg, const std::optional<data::VocabMap>& vmap,
                            const std::vector<uint64_t>& counts, double exclude_frac) {
  TokenPools p;
  const int64_t V = cfg.d_vocab;
  std::optional<int64_t> other;
  if (vmap) {
    other = vmap->other_id();
    int32_t b = vmap->to_compact(static_cast<int32_t>(models::kGpt2Bos));
    if (b != vmap->other_id()) p.bos = b;
  } else if (V > models::kGpt2Bos) {
    p.bos = models::kGpt2Bos;
  }
  for (int64_t id = 0; id < V; ++id)
    if (id != other && id != p.bos) p.all.push_back(id);
  if (p.all.size() < 30) fail("head scores: the model's vocabulary has fewer than 30 usable ids");
  p.trimmed = p.all;
  if (static_cast<int64_t>(counts.size()) == V) {
    std::vector<int64_t> by = p.all;
    std::stable_sort(by.begin(), by.end(), [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
    const size_t cut = static_cast<size_t>(exclude_frac * by.size());
    if (by.size() - 2 * cut >= 100) {
      p.trimmed.assign(by.begin() + cut, by.end() - cut);
      std::sort(p.trimmed.begin(), p.trimmed.end());
      p.trimmed_by_counts = true;
    }
  }
  return p;
}

torch::Tensor repeated_random_tokens(const TokenPools& pools, int S, int batch, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 1);
  std::uniform_int_distribution<size_t> pick(0, pools.all.size() - 1);
  const int lead = pools.bos ? 1 : 0;
  torch::Tensor t = torch::empty({batch, lead + 2 * S}, torch::kInt64);
  auto a = t.accessor<int64_t, 2>();
  for (int b = 0; b < batch; ++b) {
    if (lead) a[b][0] = *pools.bos;
    for (int i = 0; i < S; ++i) a[b][lead + i] = a[b][lead + S + i] = pools.all[pick(rng)];
  }
  return t;
}

torch::Tensor prefix_matching_tokens(const TokenPools& pools, int len, int repeats, int batch, uint64_t seed) {
  std::mt19937_64 rng(seed * 0xD1B54A32D192ED03ULL + 7);
  const int lead = pools.bos ? 1 : 0;
  torch::Tensor t = torch::empty({batch, lead + len * repeats}, torch::kInt64);
  auto a = t.accessor<int64_t, 2>();
  std::vector<int64_t> pool = pools.trimmed;
  for (int b = 0; b < batch; ++b) {
    // len distinct ids: a partial Fisher-Yates shuffle
    for (int i = 0; i < len; ++i) {
      std::uniform_int_distribution<size_t> pick(i, pool.size() - 1);
      std::swap(pool[i], pool[pick(rng)]);
    }
    if (lead) a[b][0] = *pools.bos;
    for (int r = 0; r < repeats; ++r)
      for (int i = 0; i < len; ++i) a[b][lead + r * len + i] = pool[i];
  }
  return t;
}

std::vector<double> offset_score(const torch::Tensor& pattern, int offset) {
  const int64_t T = pattern.size(2);
  const int64_t start = std::max<int64_t>(offset, 1);
  if (T <= start) return std::vector<double>(pattern.size(1), 0.0);
  // diagonal(offset = -offset): entries [i, i-offset] for i ≥ offset
  torch::Tensor d = pattern.to(torch::kFloat64).diagonal(-offset, 2, 3);  // [B, H, T-offset]
  d = d.narrow(2, start - offset, T - start);
  torch::Tensor m = d.mean(std::vector<int64_t>{0, 2});  // [H]
  return std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
}

std::vector<double> first_token_score(const torch::Tensor& pattern) {
  const int64_t T = pattern.size(2);
  torch::Tensor c = pattern.to(torch::kFloat64).select(3, 0).narrow(2, 1, T - 1);  // [B, H, T-1]
  torch::Tensor m = c.mean(std::vector<int64_t>{0, 2});
  return std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
}

std::vector<double> target_mass_score(const torch::Tensor& pattern,
                                      const std::vector<std::vector<std::vector<int>>>& targets) {
  torch::Tensor p = pattern.to(torch::kFloat64).contiguous();
  const int64_t B = p.size(0), H = p.size(1), T = p.size(2);
  auto a = p.accessor<double, 4>();
  std::vector<double> sum(H, 0.0);
  int64_t n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      const auto& tg = targets[b][i];
      if (tg.empty()) continue;
      ++n;
      for (int64_t h = 0; h < H; ++h)
        for (int j : tg) sum[h] += a[b][h][i][j];
    }
  for (auto& s : sum) s = n ? s / n : 0.0;
  return sum;
}

namespace {

// targets[b][i] = positions j+1 < i with tok[j] == tok[i] (induction), or j < i (duplicate),
// restricted to queries i ≥ min_query.
std::vector<std::vector<std::vector<int>>> match_targets(const torch::Tensor& toks, int shift, int min_query) {
  auto a = toks.accessor<int64_t, 2>();
  const int64_t B = toks.size(0), T = toks.size(1);
  std::vector<std::vector<std::vector<int>>> t(B, std::vector<std::vector<int>>(T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = min_query; i < T; ++i)
      for (int64_t j = 0; j + shift < i; ++j)
        if (a[b][j] == a[b][i]) t[b][i].push_back(static_cast<int>(j + shift));
  return t;
}


}  // namespace

HeadScores compute_head_scores(models::HookedTransformer& model, const CircuitWeights& w, const TokenPools& pools,
                               const torch::Tensor& text, const HeadScoreOptions& o) {
  torch::NoGradGuard ng;
  HeadScores s;
  s.L = w.L;
  s.H = w.H;
  if (s.L == 0) return s;
  const int n_ctx = w.cfg.n_ctx;
  const int lead = pools.bos ? 1 : 0;
  const int S = std::min(o.induction_seq_len, (n_ctx - lead) / 2);
  const int plen = std::min(o.prefix_len, (n_ctx - lead) / o.prefix_repeats);
  if (S < 2 || plen < 2) fail("head scores: n_ctx " + std::to_string(n_ctx) + " is too short for repeated sequences");
  const models::hooks::is_kind patterns_only("pattern");

  // 1. induction / duplicate on [BOS, r, r]
  s.rep_tokens = repeated_random_tokens(pools, S, o.induction_batch, o.seed);
  auto [_, cache] = models::run_with_cache(model, s.rep_tokens, patterns_only);
  auto ind_t = match_targets(s.rep_tokens, 1, lead + S + 1);
  auto dup_t = match_targets(s.rep_tokens, 0, lead + S);
  // 2. prev / current / first token on text when given
  models::ActivationCache text_cache;
  if (text.defined()) {
    text_cache = models::run_with_cache(model, text, patterns_only).second;
    s.prev_token_input = "text";
  } else {
    s.prev_token_input = "random tokens";
  }
  const models::ActivationCache& pc = text.defined() ? text_cache : cache;
  // 3. prefix matching + copying on [start] + r × 4
  torch::Tensor pm = prefix_matching_tokens(pools, plen, o.prefix_repeats, o.prefix_batch, o.seed + 1);
  auto pm_cache = models::run_with_cache(model, pm, [](const std::string& n) {
                    const std::string kind = models::hook_kind(n);
                    return kind == "pattern" || kind == "z";
                  }).second;
  auto pm_t = match_targets(pm, 1, lead + plen);
  torch::Tensor W_U = w.W_U_folded().to(torch::kFloat64);  // [D, V_out]
  auto pa = pm.accessor<int64_t, 2>();
  const int64_t Bp = pm.size(0), Tp = pm.size(1);

  for (int l = 0; l < s.L; ++l) {
    const torch::Tensor& P = cache.at(models::hooks::pattern(l));       // [B, H, T, T]
    const torch::Tensor& Pt = pc.at(models::hooks::pattern(l));
    auto ind = target_mass_score(P, ind_t), dup = target_mass_score(P, dup_t);
    auto prev = offset_score(Pt, 1), cur = offset_score(Pt, 0), first = first_token_score(Pt);
    const torch::Tensor& Pp = pm_cache.at(models::hooks::pattern(l));
    auto pref = target_mass_score(Pp, pm_t);

    // Copying evaluator: head output z·W_O through W_U', restricted to the sequence's own
    // tokens, centred, ReLU (the raise ρ); r = cosine between ρ and the head's attention over
    // those tokens (renormalised without the start token); rescaled 2r − 1 to [-1, 1].
    torch::Tensor z = pm_cache.at(models::hooks::z(l)).to(torch::kFloat64);            // [B, T, H, Dh]
    torch::Tensor Wo = model->W_O(l).detach().to(torch::kFloat64);           // [H, Dh, D]
    torch::Tensor out = torch::einsum("bthd,hde->bthe", {z, Wo});            // [B, T, H, D]
    torch::Tensor Pd = Pp.to(torch::kFloat64);                               // [B, H, T, T]
    std::vector<double> copy_sum(s.H, 0.0);
    int64_t n_q = 0;
    for (int64_t b = 0; b < Bp; ++b) {
      std::vector<int64_t> uniq;
      for (int64_t i = lead; i < Tp; ++i) uniq.push_back(pa[b][i]);
      std::sort(uniq.begin(), uniq.end());
      uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
      torch::Tensor cols = torch::tensor(uniq, torch::kInt64);
      torch::Tensor logits = torch::matmul(out[b], W_U.index_select(1, cols));  // [T, H, n]
      logits = torch::relu(logits - logits.mean(-1, true));
      torch::Tensor total = logits.sum(-1);                                     // [T, H]
      // position -> column in uniq
      std::vector<int64_t> col_of(Tp, -1);
      for (int64_t j = lead; j < Tp; ++j) col_of[j] = std::lower_bound(uniq.begin(), uniq.end(), pa[b][j]) - uniq.begin();
      torch::Tensor onehot = torch::zeros({Tp, static_cast<int64_t>(uniq.size())}, torch::kFloat64);
      for (int64_t j = lead; j < Tp; ++j) onehot[j][col_of[j]] = 1.0;
      torch::Tensor att = Pd[b].narrow(2, lead, Tp - lead);                     // [H, T, T-lead] (no start)
      torch::Tensor mass = att.sum(-1, true).clamp_min(1e-12);
      torch::Tensor att_tok = torch::matmul(att / mass, onehot.narrow(0, lead, Tp - lead));  // [H, T, n]
      torch::Tensor rho = logits.permute({1, 0, 2});                          // [H, T, n]
      // cosine between the attention over tokens and the positive raise: 1 when the head
      // raises exactly what it attends to, in proportion
      torch::Tensor raise = (att_tok * rho).sum(-1);                          // [H, T]
      torch::Tensor norms = att_tok.norm(2, {-1}) * rho.norm(2, {-1});       // [H, T]
      torch::Tensor ratio = raise / norms.clamp_min(1e-12);                   // [H, T]
      torch::Tensor valid = (total.t() > 1e-12).to(torch::kFloat64);
      ratio = (ratio * valid).narrow(1, lead + 1, Tp - lead - 1);
      torch::Tensor per_h = ratio.sum(1);
      for (int h = 0; h < s.H; ++h) copy_sum[h] += per_h[h].item<double>();
      n_q += Tp - lead - 1;
    }
    for (int h = 0; h < s.H; ++h) {
      s.induction.push_back(ind[h]);
      s.duplicate.push_back(dup[h]);
      s.prev_token.push_back(prev[h]);
      s.current_token.push_back(cur[h]);
      s.first_token.push_back(first[h]);
      s.prefix_matching.push_back(pref[h]);
      s.copying.push_back(2.0 * copy_sum[h] / std::max<int64_t>(n_q, 1) - 1.0);
    }
  }
  return s;
}

}  // namespace circuitlab::analysis
