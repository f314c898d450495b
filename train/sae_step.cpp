// The SAE training step: sparse forward/backward, Adam, unit-norm decoder. See sae_step.h.
#include "train/sae_step.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/splitmix.h"
#include "models/gemm.h"

namespace circuitlab::train {

using models::SaeArchitecture;

namespace {

// Latent entries of a batch, row-major (CSR): for row b, entries [ptr[b], ptr[b+1]).
struct Entries {
  std::vector<int64_t> ptr;   // [N+1]
  std::vector<int32_t> col;   // latent id
  std::vector<float> act;     // activation f_bj (0 for a JumpReLU window-only entry)
  std::vector<uint8_t> live;  // 1: active (the gradient passes to pre), 0: window-only
  std::vector<float> dpre;    // dL/dpre_bj (filled by the backward)
  std::vector<float> dtheta;  // dL/dθ_j contribution (JumpReLU)
  void resize_values() {
    dpre.assign(col.size(), 0.0f);
    dtheta.assign(col.size(), 0.0f);
  }
};

// Rows of `per_row` lists into one CSR.
Entries flatten(std::vector<std::vector<std::pair<int32_t, std::pair<float, uint8_t>>>>& per_row) {
  Entries e;
  e.ptr.resize(per_row.size() + 1, 0);
  for (size_t b = 0; b < per_row.size(); ++b) e.ptr[b + 1] = e.ptr[b] + static_cast<int64_t>(per_row[b].size());
  e.col.resize(e.ptr.back());
  e.act.resize(e.ptr.back());
  e.live.resize(e.ptr.back());
  for (size_t b = 0; b < per_row.size(); ++b) {
    int64_t o = e.ptr[b];
    for (auto& [j, al] : per_row[b]) {
      e.col[o] = j;
      e.act[o] = al.first;
      e.live[o] = al.second;
      ++o;
    }
  }
  e.resize_values();
  return e;
}

// Entries of the k largest values of each row of p [N, S] (only the columns `cols` when given),
// ReLU applied (zeros dropped), in ascending latent order: TopK and AuxK. A min-heap of k per row
// (most values fail the first comparison): one pass over p, no sort of the row.
Entries row_topk_entries(const float* p, int64_t N, int64_t S, int64_t k, const std::vector<int32_t>* cols) {
  std::vector<std::vector<std::pair<int32_t, std::pair<float, uint8_t>>>> rows(N);
  const int64_t n_cols = cols ? static_cast<int64_t>(cols->size()) : S;
  k = std::min(k, n_cols);
  at::parallel_for(0, N, 16, [&](int64_t b0, int64_t b1) {
    std::vector<std::pair<float, int32_t>> heap;  // min-heap on value: heap.front() is the k-th largest
    const auto greater = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = p + b * S;
      heap.clear();
      for (int64_t c = 0; c < n_cols; ++c) {
        const int32_t j = cols ? (*cols)[c] : static_cast<int32_t>(c);
        const float v = row[j];
        if (static_cast<int64_t>(heap.size()) < k) {
          heap.emplace_back(v, j);
          std::push_heap(heap.begin(), heap.end(), greater);
        } else if (v > heap.front().first) {
          std::pop_heap(heap.begin(), heap.end(), greater);
          heap.back() = {v, j};
          std::push_heap(heap.begin(), heap.end(), greater);
        }
      }
      auto& r = rows[b];
      for (const auto& [v, j] : heap)
        if (v > 0.0f) r.push_back({j, {v, 1}});
      std::sort(r.begin(), r.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
    }
  });
  return flatten(rows);
}

// Column-major index of entries: for latent j, the entry positions [cptr[j], cptr[j+1]) in row
// order (a counting sort: deterministic sums whatever the thread count).
struct ByColumn {
  std::vector<int64_t> cptr, pos, row;
};
ByColumn by_column(const Entries& e, int64_t S) {
  ByColumn c;
  c.cptr.assign(S + 1, 0);
  for (int32_t j : e.col) ++c.cptr[j + 1];
  for (int64_t j = 0; j < S; ++j) c.cptr[j + 1] += c.cptr[j];
  c.pos.resize(e.col.size());
  c.row.resize(e.col.size());
  std::vector<int64_t> fill(c.cptr.begin(), c.cptr.end() - 1);
  const int64_t N = static_cast<int64_t>(e.ptr.size()) - 1;
  for (int64_t b = 0; b < N; ++b)
    for (int64_t o = e.ptr[b]; o < e.ptr[b + 1]; ++o) {
      const int64_t q = fill[e.col[o]]++;
      c.pos[q] = o;
      c.row[q] = b;
    }
  return c;
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
inline void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// x̂ = b_dec + Σ_entries act · W_dec[j]: out [N, d] (fresh).
torch::Tensor decode_entries(const Entries& e, const torch::Tensor& W_dec, const torch::Tensor* b_dec, int64_t N) {
  const int64_t d = W_dec.size(1);
  torch::Tensor out = b_dec ? b_dec->unsqueeze(0).repeat({N, 1}) : torch::zeros({N, d});
  float* op = out.data_ptr<float>();
  const float* wp = W_dec.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t o = e.ptr[b]; o < e.ptr[b + 1]; ++o)
        if (e.act[o] != 0.0f) axpy(e.act[o], wp + int64_t(e.col[o]) * d, op + b * d, d);
  });
  return out;
}

torch::Tensor param_like(int64_t a, int64_t b = -1) { return b < 0 ? torch::zeros({a}) : torch::zeros({a, b}); }

using EntryRows = std::vector<std::vector<std::pair<int32_t, std::pair<float, uint8_t>>>>;

// BatchTopK: the k·N largest ReLU'd pre-activations of the whole batch [N, S], zeros dropped.
Entries batch_topk_entries(const torch::Tensor& pre, int64_t k) {
  const int64_t N = pre.size(0), S = pre.size(1);
  const int64_t n = std::min<int64_t>(k * N, N * S);
  auto [vals, flat] = torch::relu(pre).flatten().topk(n, /*dim=*/-1, /*largest=*/true, /*sorted=*/false);
  torch::Tensor order = flat.argsort();
  torch::Tensor fi = flat.index_select(0, order).contiguous(), fv = vals.index_select(0, order).contiguous();
  EntryRows rows(N);
  const int64_t* ip = fi.data_ptr<int64_t>();
  const float* vp = fv.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    if (vp[i] > 0.0f) rows[ip[i] / S].push_back({static_cast<int32_t>(ip[i] % S), {vp[i], 1}});
  return flatten(rows);
}

// Standard (th == nullptr): every positive pre-activation of p [N, S]. JumpReLU: active where
// pre > θ_j and pre > 0; a window-only entry where |pre − θ_j| < ε/2 otherwise.
Entries threshold_entries(const float* pp, int64_t N, int64_t S, const float* th, float eps) {
  const bool jump = th != nullptr;
  EntryRows rows(N);
  at::parallel_for(0, N, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* p = pp + b * S;
      for (int64_t j = 0; j < S; ++j) {
        const float v = p[j];
        if (!jump) {
          if (v > 0.0f) rows[b].push_back({static_cast<int32_t>(j), {v, 1}});
          continue;
        }
        const bool active = v > th[j] && v > 0.0f;
        const bool window = std::fabs(v - th[j]) < 0.5f * eps;
        if (active || window) rows[b].push_back({static_cast<int32_t>(j), {active ? v : 0.0f, uint8_t(active)}});
      }
    }
  });
  return flatten(rows);
}

// Which latents are active (and, for JumpReLU, within the STE window) given pre [N, S].
// `theta` is exp(log θ) for JumpReLU (undefined otherwise).
Entries active_entries(SaeArchitecture arch, const torch::Tensor& pre, int64_t k, const torch::Tensor& theta,
                       float eps) {
  const int64_t N = pre.size(0), S = pre.size(1);
  const float* pp = pre.data_ptr<float>();
  switch (arch) {
    case SaeArchitecture::TopK:
      return row_topk_entries(pp, N, S, k, nullptr);
    case SaeArchitecture::BatchTopK:
      return batch_topk_entries(pre, k);
    case SaeArchitecture::Standard:
    case SaeArchitecture::JumpReLU:
      break;
  }
  return threshold_entries(pp, N, S, arch == SaeArchitecture::JumpReLU ? theta.data_ptr<float>() : nullptr, eps);
}

// st.mse, st.l0 and st.explained_variance of the reconstruction error err = x̂ − x; returns the
// number of active entries.
int64_t reconstruction_stats(const torch::Tensor& x, const torch::Tensor& err, const Entries& e, SaeStepStats& st) {
  const int64_t N = x.size(0);
  st.mse = err.pow(2).sum().item<double>() / N;
  int64_t active = 0;
  for (uint8_t l : e.live) active += l;
  st.l0 = static_cast<double>(active) / N;
  const double var = (x - x.mean(0)).pow(2).sum().item<double>();
  st.explained_variance = var > 0 ? 1.0 - err.pow(2).sum().item<double>() / var : 0.0;
  return active;
}

// st.sparsity_loss: standard λ Σ f_bj ‖W_dec_j‖ / N (returns the norms ‖W_dec_j‖ [S]); JumpReLU
// λ·L0 (returns undefined, as for the TopK family, which has none).
torch::Tensor sparsity_loss(SaeArchitecture arch, const Entries& e, const torch::Tensor& W_dec, double l1_coefficient,
                            int64_t active, int64_t N, SaeStepStats& st) {
  torch::Tensor dec_norm;
  if (arch == SaeArchitecture::Standard) {
    dec_norm = W_dec.norm(2, 1).contiguous();
    const float* dn = dec_norm.data_ptr<float>();
    double l1 = 0;
    for (size_t o = 0; o < e.col.size(); ++o) l1 += double(e.act[o]) * dn[e.col[o]];
    st.sparsity_loss = l1_coefficient * l1 / N;
  }
  if (arch == SaeArchitecture::JumpReLU) st.sparsity_loss = l1_coefficient * static_cast<double>(active) / N;
  return dec_norm;
}

// AuxK (TopK family): the k_aux largest pre-activations among dead latents reconstruct the residual.
struct AuxK {
  Entries e;
  torch::Tensor grad;  // [N, d] dL_aux/dê; undefined when no latent is dead
};
AuxK aux_k(const float* pp, int64_t N, int64_t S, const torch::Tensor& dead, const SaeStepOptions& opt,
           const torch::Tensor& x, const torch::Tensor& x_hat, const torch::Tensor& W_dec, SaeStepStats& st) {
  AuxK a;
  const int64_t d = x.size(1);
  const int64_t n_dead = dead.sum().item<int64_t>();
  if (n_dead == 0) return a;
  const int64_t k_aux0 = opt.k_aux > 0 ? opt.k_aux : std::max<int64_t>(1, d / 2);
  const double scale = std::min(1.0, static_cast<double>(n_dead) / k_aux0);
  const int64_t k_aux = std::min(k_aux0, n_dead);
  std::vector<int32_t> dead_cols;
  const bool* dp = dead.data_ptr<bool>();
  for (int64_t j = 0; j < S; ++j)
    if (dp[j]) dead_cols.push_back(static_cast<int32_t>(j));
  a.e = row_topk_entries(pp, N, S, k_aux, &dead_cols);
  const torch::Tensor e_hat = decode_entries(a.e, W_dec, nullptr, N);
  const torch::Tensor diff = e_hat - (x - x_hat);  // residual e = x − x̂ held fixed
  const double c = opt.aux_coefficient * scale;
  st.aux_loss = c * diff.pow(2).sum().item<double>() / N;
  a.grad = (diff * (2.0 * c / N)).contiguous();
  return a;
}

// Raw views of one step's dense tensors for the backward loops.
struct BackwardView {
  int64_t N, d, S;
  const float* pre;       // [N, S]
  const float* grad_out;  // [N, d] dL/dx̂
  const float* xc;        // [N, d] the encoder input
  const float* W_dec;     // [S, d]
  const float* dec_norm;  // [S] ‖W_dec_j‖ (standard) or nullptr
  const float* theta;     // [S] θ (JumpReLU) or nullptr
  const float* aux_grad;  // [N, d] dL_aux/dê or nullptr
  float l1n;              // λ / N
  float eps;              // JumpReLU bandwidth
};

// Per entry dL/df = g_b · W_dec_j (+ λ‖W_dec_j‖/N) into e.dpre (and the JumpReLU STE into
// e.dtheta), row-parallel; AuxK entries: dL_aux/df into aux.dpre.
void entry_backward(Entries& e, Entries& aux, const BackwardView& v) {
  const int64_t d = v.d, S = v.S;
  const float* gp = v.grad_out;
  const float* wdp = v.W_dec;
  const float* dn = v.dec_norm;
  const float* th = v.theta;
  const float* pp = v.pre;
  const float l1n = v.l1n, eps = v.eps;
  at::parallel_for(0, v.N, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t o = e.ptr[b]; o < e.ptr[b + 1]; ++o) {
        const int64_t j = e.col[o];
        float df = dot(gp + b * d, wdp + j * d, d);
        if (dn) df += l1n * dn[j];
        e.dpre[o] = e.live[o] ? df : 0.0f;
        if (th && std::fabs(pp[b * S + j] - th[j]) < 0.5f * eps) {
          // JumpReLU STE (Rajamanoharan et al. 2024): ∂f/∂θ ≈ −(θ/ε)·K, ∂H/∂θ ≈ −(1/ε)·K, K = 1 in the window.
          e.dtheta[o] = -(th[j] / eps) * df + -(l1n / eps);
        }
      }
  });
  if (v.aux_grad) {
    const float* ag = v.aux_grad;
    at::parallel_for(0, v.N, 16, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        for (int64_t o = aux.ptr[b]; o < aux.ptr[b + 1]; ++o) aux.dpre[o] = dot(ag + b * d, wdp + int64_t(aux.col[o]) * d, d);
    });
  }
}

// Gradient buffers reused across steps when the caller keeps `g` (every row is written later).
void ensure_grad_buffers(SaeGrads& g, SaeArchitecture arch, int64_t S, int64_t d) {
  const auto ensure = [](torch::Tensor& t, std::vector<int64_t> shape) {
    if (!t.defined() || t.sizes() != at::IntArrayRef(shape)) t = torch::empty(shape);
  };
  ensure(g.W_encT, {S, d});
  ensure(g.W_dec, {S, d});
  ensure(g.b_enc, {S});
  if (arch == SaeArchitecture::JumpReLU) ensure(g.log_threshold, {S});
}

// Per latent: decoder and encoder rows, b_enc, θ (column-parallel, no atomics) into g. Returns
// the tokens on which each latent fired.
std::vector<int64_t> latent_grads(const Entries& e, const Entries& aux, const BackwardView& v, SaeGrads& g) {
  const int64_t d = v.d, S = v.S;
  const ByColumn ce = by_column(e, S);
  ByColumn ca;
  if (v.aux_grad) ca = by_column(aux, S);
  const float* gp = v.grad_out;
  const float* xcp = v.xc;
  const float* agp = v.aux_grad;
  const float* wdp = v.W_dec;
  const float* dn = v.dec_norm;
  const float* th = v.theta;
  const float l1n = v.l1n;
  float* gwe = g.W_encT.data_ptr<float>();
  float* gwd = g.W_dec.data_ptr<float>();
  float* gbe = g.b_enc.data_ptr<float>();
  float* glt = g.log_threshold.defined() ? g.log_threshold.data_ptr<float>() : nullptr;
  std::vector<int64_t> fired(S, 0);  // tokens on which latent j fired
  at::parallel_for(0, S, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      float* we = gwe + j * d;
      float* wd = gwd + j * d;
      std::fill(we, we + d, 0.0f);
      std::fill(wd, wd + d, 0.0f);
      float be = 0, dth = 0, asum = 0;
      for (int64_t q = ce.cptr[j]; q < ce.cptr[j + 1]; ++q) {
        const int64_t o = ce.pos[q], b = ce.row[q];
        if (e.act[o] != 0.0f) axpy(e.act[o], gp + b * d, wd, d);
        if (e.dpre[o] != 0.0f) axpy(e.dpre[o], xcp + b * d, we, d);
        be += e.dpre[o];
        dth += e.dtheta[o];
        asum += e.act[o];
        fired[j] += e.live[o];
      }
      if (agp)
        for (int64_t q = ca.cptr[j]; q < ca.cptr[j + 1]; ++q) {
          const int64_t o = ca.pos[q], b = ca.row[q];
          axpy(aux.act[o], agp + b * d, wd, d);
          axpy(aux.dpre[o], xcp + b * d, we, d);
          be += aux.dpre[o];
        }
      if (dn && dn[j] > 0) axpy(l1n * asum / dn[j], wdp + j * d, wd, d);  // ∂(λ f ‖W_dec_j‖)/∂W_dec_j
      gbe[j] = be;
      if (glt) glt[j] = dth * th[j];  // θ = exp(log θ)
    }
  });
  return fired;
}

// Bookkeeping for apply(): firing counts [S] (float), tokens, and (BatchTopK) the smallest
// selected activation.
void record_firing(SaeGrads& g, SaeArchitecture arch, const std::vector<int64_t>& fired, const Entries& e, int64_t N) {
  const int64_t S = static_cast<int64_t>(fired.size());
  g.fired = torch::empty({S});
  for (int64_t j = 0; j < S; ++j) g.fired.data_ptr<float>()[j] = static_cast<float>(fired[j]);
  g.tokens = N;
  g.min_act = -1;
  if (arch == SaeArchitecture::BatchTopK && !e.act.empty()) {
    float mn = INFINITY;
    for (float a : e.act)
      if (a > 0.0f) mn = std::min(mn, a);
    g.min_act = std::isfinite(mn) ? mn : -1.0;
  }
}

}  // namespace

SaeTrainingState::SaeTrainingState(models::SaeConfig cfg, SaeStepOptions opt) : cfg_(std::move(cfg)), opt_(opt) {
  models::validate_sae_config(cfg_, "SAE config");
  const int64_t S = cfg_.d_sae, d = cfg_.d_in;
  W_encT = param_like(S, d);
  W_dec = param_like(S, d);
  b_enc = param_like(S);
  b_dec = param_like(d);
  if (cfg_.architecture == SaeArchitecture::JumpReLU)
    log_threshold = torch::full({S}, std::log(opt_.jumprelu_init_threshold));
  since_fired_ = torch::zeros({S}, torch::kLong);
  fire_counts_ = torch::zeros({S}, torch::kLong);
  for (const char* n : {"W_encT", "W_dec", "b_enc", "b_dec", "log_threshold"}) {
    const torch::Tensor& p = std::string(n) == "W_encT"  ? W_encT
                             : std::string(n) == "W_dec" ? W_dec
                             : std::string(n) == "b_enc" ? b_enc
                             : std::string(n) == "b_dec" ? b_dec
                                                         : log_threshold;
    if (!p.defined()) continue;
    m_[n] = torch::zeros_like(p);
    v_[n] = torch::zeros_like(p);
  }
}

void SaeTrainingState::init(const torch::Tensor& sample, uint64_t seed, bool geometric_median) {
  TORCH_CHECK(sample.dim() == 2 && sample.size(1) == cfg_.d_in, "SAE init sample must be [M, d_in]");
  torch::Tensor x = sample.to(torch::kFloat);
  const double mean_norm = x.norm(2, /*dim=*/1).mean().item<double>();
  if (!(mean_norm > 0) || !std::isfinite(mean_norm)) fail("SAE init: the activations are all zero (or not finite)");
  scale_ = std::sqrt(static_cast<double>(cfg_.d_in)) / mean_norm;
  x = x * scale_;
  auto gen = at::detail::createCPUGenerator(splitmix64(seed ^ 0x5AEull));
  torch::Tensor W = at::normal(0.0, 1.0, {cfg_.d_sae, cfg_.d_in}, gen);
  const double norm = cfg_.architecture == SaeArchitecture::Standard ? 0.1 : 1.0;
  W_dec = (W / W.norm(2, 1, true) * norm).contiguous();
  W_encT = W_dec.clone();  // W_enc = W_decᵀ
  b_enc.zero_();
  torch::Tensor center = x.mean(0);
  if (geometric_median) {  // Weiszfeld iterations from the mean
    for (int it = 0; it < 100; ++it) {
      torch::Tensor w = 1.0 / (x - center).norm(2, 1).clamp_min(1e-6);
      torch::Tensor next = (x * w.unsqueeze(1)).sum(0) / w.sum();
      const double moved = (next - center).norm().item<double>();
      center = next;
      if (moved < 1e-6) break;
    }
  }
  b_dec = center.contiguous().clone();
}

SaeStepStats SaeTrainingState::compute_grads(const torch::Tensor& x_raw, SaeGrads& g) {
  const int64_t N = x_raw.size(0), d = cfg_.d_in, S = cfg_.d_sae;
  TORCH_CHECK(x_raw.dim() == 2 && d == x_raw.size(1), "SAE batch must be [N, d_in=", d, "]");
  const SaeArchitecture arch = cfg_.architecture;
  const torch::Tensor x = (x_raw.to(torch::kFloat) * scale_).contiguous();  // [N, d]
  const torch::Tensor xc = cfg_.apply_b_dec_to_input ? (x - b_dec).contiguous() : x;
  // [N, S], the one GEMM, into a buffer kept across steps (a fresh 100s-of-MB tensor each step
  // spent a third of the step in page faults).
  if (!pre_.defined() || pre_.size(0) != N || pre_.size(1) != S) pre_ = torch::empty({N, S});
  models::gemm::mm_into(pre_, xc, W_encT.t());
  pre_.add_(b_enc);
  const torch::Tensor& pre = pre_;
  const float* pp = pre.data_ptr<float>();

  // --- which latents are active (and, for JumpReLU, within the STE window) ---
  const float eps = static_cast<float>(opt_.jumprelu_bandwidth);
  torch::Tensor theta;
  if (arch == SaeArchitecture::JumpReLU) theta = log_threshold.exp().contiguous();
  Entries e = active_entries(arch, pre, cfg_.k, theta, eps);

  // --- forward: sparse decode, losses ---
  const torch::Tensor x_hat = decode_entries(e, W_dec, &b_dec, N);
  const torch::Tensor err = x_hat - x;  // [N, d]
  SaeStepStats st;
  const int64_t active = reconstruction_stats(x, err, e, st);
  const torch::Tensor dec_norm = sparsity_loss(arch, e, W_dec, opt_.l1_coefficient, active, N, st);
  AuxK aux;
  const bool topk_family = arch == SaeArchitecture::TopK || arch == SaeArchitecture::BatchTopK;
  if (topk_family && opt_.aux_coefficient > 0)
    aux = aux_k(pp, N, S, since_fired_ >= opt_.dead_tokens, opt_, x, x_hat, W_dec, st);
  st.loss = st.mse + st.sparsity_loss + st.aux_loss;

  // --- backward: per entry, then per latent ---
  const torch::Tensor grad_out = (err * (2.0 / N)).contiguous();  // [N, d] dL/dx̂
  BackwardView v;
  v.N = N, v.d = d, v.S = S;
  v.pre = pp;
  v.grad_out = grad_out.data_ptr<float>();
  v.xc = xc.data_ptr<float>();
  v.W_dec = W_dec.data_ptr<float>();
  v.dec_norm = dec_norm.defined() ? dec_norm.data_ptr<float>() : nullptr;
  v.theta = theta.defined() ? theta.data_ptr<float>() : nullptr;
  v.aux_grad = aux.grad.defined() ? aux.grad.data_ptr<float>() : nullptr;
  v.l1n = static_cast<float>(opt_.l1_coefficient / N);
  v.eps = eps;
  entry_backward(e, aux.e, v);
  ensure_grad_buffers(g, arch, S, d);
  const std::vector<int64_t> fired = latent_grads(e, aux.e, v, g);
  for (int64_t j = 0; j < S; ++j) st.fired_latents += fired[j] > 0;
  // b_dec: decoder bias Σ_b g_b, minus the encoder-input path Σ_j (∂L/∂b_enc_j) · W_enc_j.
  torch::Tensor gbd = grad_out.sum(0);
  if (cfg_.apply_b_dec_to_input) gbd = gbd - models::gemm::mm(g.b_enc.unsqueeze(0), W_encT).squeeze(0);
  g.b_dec = gbd.contiguous();
  record_firing(g, arch, fired, e, N);
  return st;
}

void SaeTrainingState::adam(torch::Tensor& p, torch::Tensor& g, torch::Tensor& m, torch::Tensor& v, int64_t t) const {
  const float b1 = static_cast<float>(opt_.beta1), b2 = static_cast<float>(opt_.beta2);
  const float lr_t = static_cast<float>(opt_.lr * std::sqrt(1.0 - std::pow(opt_.beta2, t)) / (1.0 - std::pow(opt_.beta1, t)));
  const float eps_t = static_cast<float>(opt_.eps * std::sqrt(1.0 - std::pow(opt_.beta2, t)));
  float* pp = p.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      mp[i] = b1 * mp[i] + (1 - b1) * gp[i];
      vp[i] = b2 * vp[i] + (1 - b2) * gp[i] * gp[i];
      pp[i] -= lr_t * mp[i] / (std::sqrt(vp[i]) + eps_t);
    }
  });
}

SaeStepStats SaeTrainingState::step(const torch::Tensor& x) {
  SaeStepStats st = compute_grads(x, grads_);
  apply(grads_);
  return st;
}

void SaeTrainingState::apply(SaeGrads& g) {
  const int64_t t = ++steps_;
  const int64_t S = cfg_.d_sae, d = cfg_.d_in;
  const bool unit = cfg_.architecture != SaeArchitecture::Standard;
  if (unit) {  // remove the gradient's component parallel to each (unit) decoder row
    float* w = W_dec.data_ptr<float>();
    float* gw = g.W_dec.data_ptr<float>();
    at::parallel_for(0, S, 64, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) axpy(-dot(gw + j * d, w + j * d, d), w + j * d, gw + j * d, d);
    });
  }
  adam(W_encT, g.W_encT, m_["W_encT"], v_["W_encT"], t);
  adam(W_dec, g.W_dec, m_["W_dec"], v_["W_dec"], t);
  adam(b_enc, g.b_enc, m_["b_enc"], v_["b_enc"], t);
  adam(b_dec, g.b_dec, m_["b_dec"], v_["b_dec"], t);
  if (log_threshold.defined()) adam(log_threshold, g.log_threshold, m_["log_threshold"], v_["log_threshold"], t);
  if (unit) {
    float* w = W_dec.data_ptr<float>();
    at::parallel_for(0, S, 64, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const float n = std::sqrt(dot(w + j * d, w + j * d, d));
        if (n > 0)
          for (int64_t c = 0; c < d; ++c) w[j * d + c] /= n;
      }
    });
  }
  int64_t* sf = since_fired_.data_ptr<int64_t>();
  int64_t* fc = fire_counts_.data_ptr<int64_t>();
  const float* fired = g.fired.data_ptr<float>();
  for (int64_t j = 0; j < S; ++j) {
    const int64_t n = std::llround(fired[j]);
    sf[j] = n > 0 ? 0 : sf[j] + g.tokens;
    fc[j] += n;
  }
  tokens_seen_ += g.tokens;
  if (cfg_.architecture == SaeArchitecture::BatchTopK && g.min_act > 0)
    batchtopk_threshold = (1 - opt_.batchtopk_threshold_lr) * batchtopk_threshold + opt_.batchtopk_threshold_lr * g.min_act;
}

torch::Tensor SaeTrainingState::log10_density() const {
  if (tokens_seen_ == 0) return torch::full({cfg_.d_sae}, -10.0f);
  return (fire_counts_.to(torch::kDouble) / static_cast<double>(tokens_seen_) + 1e-10).log10().to(torch::kFloat);
}

int64_t SaeTrainingState::resample_dead(const torch::Tensor& x_raw, uint64_t seed) {
  const torch::Tensor dead = (since_fired_ >= opt_.dead_tokens).nonzero().flatten();  // [n_dead]
  const int64_t n_dead = dead.numel();
  if (n_dead == 0) return 0;
  const torch::Tensor x = x_raw.to(torch::kFloat) * scale_;
  const models::SparseAutoencoder sae = current_sae();
  const torch::Tensor loss = (sae.decode(sae.encode(x)) - x).pow(2).sum(1);  // [N]
  auto gen = at::detail::createCPUGenerator(splitmix64(seed ^ 0x2E5A3Full));
  const torch::Tensor pick = at::multinomial(loss.pow(2).to(torch::kDouble) + 1e-30, n_dead, /*replacement=*/true, gen);
  torch::Tensor v = x.index_select(0, pick) - b_dec;  // [n_dead, d]
  v = v / v.norm(2, 1, true).clamp_min(1e-12);
  const torch::Tensor alive = since_fired_ < opt_.dead_tokens;
  const bool any_alive = alive.any().item<bool>();
  const double dec_norm = any_alive ? W_dec.norm(2, 1).masked_select(alive).mean().item<double>() : 1.0;
  const double enc_norm = any_alive ? W_encT.norm(2, 1).masked_select(alive).mean().item<double>() : 1.0;
  W_dec.index_copy_(0, dead, v * dec_norm);
  W_encT.index_copy_(0, dead, v * (0.2 * enc_norm));
  b_enc.index_fill_(0, dead, 0.0f);
  for (const char* n : {"W_encT", "W_dec"}) {
    m_[n].index_fill_(0, dead, 0.0f);
    v_[n].index_fill_(0, dead, 0.0f);
  }
  m_["b_enc"].index_fill_(0, dead, 0.0f);
  v_["b_enc"].index_fill_(0, dead, 0.0f);
  since_fired_.index_fill_(0, dead, 0);
  return n_dead;
}

double SaeTrainingState::dead_fraction() const {
  return (since_fired_ >= opt_.dead_tokens).to(torch::kDouble).mean().item<double>();
}

models::SparseAutoencoder SaeTrainingState::current_sae() const {
  models::SparseAutoencoder sae(cfg_);
  sae.W_enc = W_encT.t().contiguous();
  sae.W_dec = W_dec.clone();
  sae.b_enc = b_enc.clone();
  sae.b_dec = b_dec.clone();
  if (cfg_.architecture == SaeArchitecture::JumpReLU) sae.threshold = log_threshold.exp();
  if (cfg_.architecture == SaeArchitecture::BatchTopK) sae.threshold = torch::full({cfg_.d_sae}, batchtopk_threshold);
  return sae;
}

models::SparseAutoencoder SaeTrainingState::export_sae() const {
  // Training saw s·x: encode((s·x − b_dec)·W_enc) = encode((x − b_dec/s)·(s·W_enc)), and
  // x̂ = (f·W_dec + b_dec)/s. Pre-activations (so thresholds) are unchanged.
  models::SparseAutoencoder sae = current_sae();
  sae.W_enc = sae.W_enc * scale_;
  sae.W_dec = sae.W_dec / scale_;
  sae.b_dec = sae.b_dec / scale_;
  sae.log10_density = log10_density();
  return sae;
}

std::map<std::string, torch::Tensor> SaeTrainingState::tensors() const {
  std::map<std::string, torch::Tensor> t{{"W_encT", W_encT},
                                         {"W_dec", W_dec},
                                         {"b_enc", b_enc},
                                         {"b_dec", b_dec},
                                         {"since_fired", since_fired_},
                                         {"fire_counts", fire_counts_},
                                         {"tokens_seen", torch::full({1}, tokens_seen_, torch::kLong)},
                                         {"scale", torch::full({1}, scale_, torch::kDouble)},
                                         {"steps", torch::full({1}, steps_, torch::kLong)},
                                         {"batchtopk_threshold", torch::full({1}, batchtopk_threshold, torch::kDouble)}};
  if (log_threshold.defined()) t["log_threshold"] = log_threshold;
  for (const auto& [n, m] : m_) t["adam_m." + n] = m;
  for (const auto& [n, v] : v_) t["adam_v." + n] = v;
  return t;
}

void SaeTrainingState::load_tensors(const std::map<std::string, torch::Tensor>& t, const std::string& where) {
  auto get = [&](const std::string& name, const torch::Tensor& like) {
    auto it = t.find(name);
    if (it == t.end()) fail(where + ": tensor '" + name + "' is missing");
    if (it->second.sizes() != like.sizes() || it->second.scalar_type() != like.scalar_type())
      fail(where + ": tensor '" + name + "' does not match the SAE's shape or dtype");
    return it->second.clone();
  };
  W_encT = get("W_encT", W_encT);
  W_dec = get("W_dec", W_dec);
  b_enc = get("b_enc", b_enc);
  b_dec = get("b_dec", b_dec);
  if (log_threshold.defined()) log_threshold = get("log_threshold", log_threshold);
  since_fired_ = get("since_fired", since_fired_);
  fire_counts_ = get("fire_counts", fire_counts_);
  tokens_seen_ = get("tokens_seen", torch::zeros({1}, torch::kLong)).item<int64_t>();
  scale_ = get("scale", torch::zeros({1}, torch::kDouble)).item<double>();
  steps_ = get("steps", torch::zeros({1}, torch::kLong)).item<int64_t>();
  batchtopk_threshold = get("batchtopk_threshold", torch::zeros({1}, torch::kDouble)).item<double>();
  for (auto& [n, m] : m_) m = get("adam_m." + n, m);
  for (auto& [n, v] : v_) v = get("adam_v." + n, v);
}

}  // namespace circuitlab::train
