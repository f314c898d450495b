// Eigenvalue positivity through Dh×Dh cores (see eigen_positivity.h).
#include "analysis/eigen_positivity.h"
#include "models/gemm.h"

#include <ATen/Parallel.h>
#include <Eigen/Eigenvalues>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace circuitlab::analysis {

Mat ov_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head) {
  // W_E'·W_V·W_O·W_U' = A·B with A = W_E'·W_V [V,Dh], B = W_O·W_U' [Dh,V]: B·A = W_O·G_ov·W_V.
  const int i = w.idx(layer, head);
  return w.W_O(i) * g.ov * w.W_V(i);
}

Mat qk_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head) {
  // W_E'·W_Q·W_Kᵀ·W_E'ᵀ = A·B, A = W_E'·W_Q, B = W_Kᵀ·W_E'ᵀ: B·A = W_Kᵀ·G_qk·W_Q.
  const int i = w.idx(layer, head);
  return w.W_K(i).transpose() * g.qk * w.W_Q(i);
}

Mat kcomp_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head, const Mat& ov_mix_T) {
  const int i = w.idx(layer, head);
  return w.W_K(i).transpose() * ov_mix_T * g.qk * w.W_Q(i);
}

double positivity_of(const Mat& m) {
  Eigen::EigenSolver<Mat> es(m, /*computeEigenvectors=*/false);
  if (es.info() != Eigen::Success) fail("eigen positivity: eigen solver did not converge");
  return eigen_positivity(es.eigenvalues());
}

namespace {

// Row-major [n, r, c] double tensor slice i as an Eigen matrix (copied).
Mat slice_mat(const torch::Tensor& t, int64_t i) {
  return Eigen::Map<const RowMajorMat>(t[i].data_ptr<double>(), t.size(1), t.size(2));
}

// Σλ/Σ|λ| of each [r, r] matrix of cores [n, r, r] (double), the solves spread over the
// intra-op threads (each an independent Eigen solver).
std::vector<double> positivities(const torch::Tensor& cores) {
  torch::Tensor c = cores.to(torch::kFloat64).contiguous();
  const int64_t n = c.size(0);
  std::vector<double> out(static_cast<size_t>(n));
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] = positivity_of(slice_mat(c, i));
  });
  return out;
}

// [D, D] (Eigen) times every head's [D, Dh] factor: one GEMM [D, D]·[D, N·Dh] -> [N, D, Dh].
torch::Tensor times_each(const Mat& G, const torch::Tensor& W, torch::Dtype dt) {
  const int64_t N = W.size(0), D = W.size(1), Dh = W.size(2);
  torch::Tensor flat = W.to(dt).permute({1, 0, 2}).reshape({D, N * Dh});  // [D, N·Dh]
  return models::gemm::mm(to_torch(G, dt), flat).view({D, N, Dh}).permute({1, 0, 2});  // [N, D, Dh]
}

}  // namespace

std::vector<HeadPositivity> head_positivities(const CircuitWeights& w, const EmbedGrams& g,
                                              const std::vector<double>& prev) {
  // Batched: every head's Dh×Dh core from one GEMM per circuit (dtype w.opts.big_dtype) and a
  // bmm; the cores, norms and solves in double. Same numbers as ov_circuit_core /
  // qk_circuit_core / kcomp_circuit_core per head (the tests hold them to dense V×V circuits).
  torch::NoGradGuard ng;
  const bool have_prev = prev.size() == static_cast<size_t>(w.L * w.H);
  const int N = w.L * w.H, H = w.H;
  const torch::Dtype dt = w.opts.big_dtype;
  std::vector<HeadPositivity> out(static_cast<size_t>(N));
  if (N == 0) return out;
  const StackedHeads& s = w.stacked;
  torch::Tensor GV = times_each(g.ov, s.V, dt);  // G_ov·W_V [N, D, Dh]
  torch::Tensor GQ = times_each(g.qk, s.Q, dt);  // G_qk·W_Q [N, D, Dh]
  // Per-head products through gemm::bmm (float32: oneDNN, heads over the threads).
  auto bmm = [](const torch::Tensor& a, const torch::Tensor& b) { return models::gemm::bmm(a, b).to(torch::kFloat64); };
  const torch::Tensor Odt = s.O.to(dt), Vdt = s.V.to(dt), Kdt = s.K.to(dt);
  torch::Tensor ov_core = bmm(Odt, GV);                   // W_O·G_ov·W_V [N, Dh, Dh]
  torch::Tensor qk_core = bmm(Kdt.transpose(1, 2), GQ);  // W_Kᵀ·G_qk·W_Q
  torch::Tensor resid_core = bmm(Odt, Vdt);              // W_O·W_V [N, Dh, Dh]
  // ‖W_V·W_O‖² = ⟨W_VᵀW_V, W_O·W_Oᵀ⟩, ‖W_Q·W_Kᵀ‖² = ⟨W_QᵀW_Q, W_KᵀW_K⟩ (Dh×Dh Grams, double).
  auto inner = [](const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum({1, 2}); };
  torch::Tensor ov_norm = inner(s.S_V, s.S_O).sqrt();  // [N]
  torch::Tensor qk_norm = inner(s.S_Q, s.S_K).sqrt();

  // K-composition cores of heads in layer l ≥ 1 (W_Kᵀ·M·G_qk·W_Q):
  //   best source j: (W_O^j·W_K)ᵀ·(W_V^jᵀ·G_qk·W_Q), Dh×Dh factors, no D×D mixture;
  //   weighted: M = Σ_{j in layers < l} c_j·(OV^j)ᵀ, kept as a running [D, D] sum (one GEMM per
  //   layer), then W_Kᵀ·(M·G_qk·W_Q).
  std::vector<torch::Tensor> kc_cores, kw_cores;
  std::vector<int> kc_src;
  if (have_prev && w.L > 1) {
    torch::Tensor mix = torch::zeros({w.D, w.D}, torch::TensorOptions().dtype(dt));  // Σ c_j (OV^j)ᵀ [D, D]
    int best = -1;
    double best_score = -1;  // the earlier head with the largest prev-token score (first on ties)
    for (int l = 1; l < w.L; ++l) {
      // add layer l-1: Σ_h c_h W_O^hᵀ W_V^hᵀ = [c_h·W_O^hᵀ]_h [D, H·Dh] · [W_V^hᵀ]_h [H·Dh, D]
      torch::Tensor c = torch::tensor(std::vector<double>(prev.begin() + (l - 1) * H, prev.begin() + l * H),
                                      torch::TensorOptions().dtype(torch::kFloat64)).to(dt);
      torch::Tensor Ol = Odt.narrow(0, (l - 1) * H, H) * c.view({H, 1, 1});     // [H, Dh, D]
      torch::Tensor Vl = Vdt.narrow(0, (l - 1) * H, H);                         // [H, D, Dh]
      mix.addmm_(Ol.reshape({H * w.Dh, w.D}).t(), Vl.transpose(1, 2).reshape({H * w.Dh, w.D}));
      for (int j = (l - 1) * H; j < l * H; ++j)
        if (prev[j] > best_score) {
          best_score = prev[j];
          best = j;
        }
      torch::Tensor GQl = GQ.narrow(0, l * H, H);                               // [H, D, Dh]
      torch::Tensor Kl = Kdt.narrow(0, l * H, H);                               // [H, D, Dh]
      // weighted: W_Kᵀ·(M·GQ): one GEMM [D, D]·[D, H·Dh], then bmm
      torch::Tensor MGQ = torch::mm(mix, GQl.permute({1, 0, 2}).reshape({w.D, H * w.Dh})).view({w.D, H, w.Dh}).permute({1, 0, 2});
      kw_cores.push_back(torch::bmm(Kl.transpose(1, 2), MGQ).to(torch::kFloat64));  // [H, Dh, Dh]
      // best: (W_O^j·W_K)ᵀ [H, Dh, Dh] · (W_V^jᵀ·GQ) [H, Dh, Dh]
      const int src = best < 0 ? 0 : best;  // best < 0 only when every score is NaN: no kcomp then
      torch::Tensor OK = torch::matmul(Odt[src], Kl);                           // [H, Dh, Dh]
      torch::Tensor VGQ = torch::matmul(Vdt[src].t(), GQl);                     // [H, Dh, Dh]
      kc_cores.push_back(torch::bmm(OK.transpose(1, 2), VGQ).to(torch::kFloat64));
      kc_src.push_back(best);
    }
  }

  // All the Dh×Dh eigenproblems in one parallel pass.
  std::vector<torch::Tensor> all{ov_core, qk_core, resid_core};
  for (const auto& t : kc_cores) all.push_back(t);
  for (const auto& t : kw_cores) all.push_back(t);
  std::vector<double> pos = positivities(torch::cat(all, 0));
  torch::Tensor kw_all = kw_cores.empty() ? torch::Tensor() : torch::cat(kw_cores, 0);
  const double* ovn = ov_norm.data_ptr<double>();
  const double* qkn = qk_norm.data_ptr<double>();
  const size_t n_kc = static_cast<size_t>(kc_cores.size()) * H;
  for (int i = 0; i < N; ++i) {
    HeadPositivity& p = out[static_cast<size_t>(i)];
    p.layer = i / H;
    p.head = i % H;
    p.ov = pos[static_cast<size_t>(i)];
    p.qk = pos[static_cast<size_t>(N + i)];
    p.ov_resid = pos[static_cast<size_t>(2 * N + i)];
    p.ov_norm = ovn[i];
    p.qk_norm = qkn[i];
    const int src = p.layer >= 1 && !kc_src.empty() ? kc_src[static_cast<size_t>(p.layer - 1)] : -1;
    if (src >= 0) {
      const size_t k = static_cast<size_t>(i - H);  // row among layers ≥ 1
      p.kcomp = pos[3 * static_cast<size_t>(N) + k];
      p.kcomp_src_layer = src / H;
      p.kcomp_src_head = src % H;
      p.kcomp_weighted = pos[3 * static_cast<size_t>(N) + n_kc + k];
      p.kcomp_trace_weighted = kw_all[static_cast<int64_t>(k)].trace().item<double>();
    }
  }
  return out;
}

OvCopyingCorrelation ov_copying_correlation(const std::vector<HeadPositivity>& heads) {
  std::vector<double> a, b;  // ov_resid, ov
  for (const auto& h : heads)
    if (std::isfinite(h.ov_resid) && std::isfinite(h.ov)) a.push_back(h.ov_resid), b.push_back(h.ov);
  OvCopyingCorrelation c;
  c.heads = static_cast<int>(a.size());
  c.pearson_r = std::numeric_limits<double>::quiet_NaN();
  if (a.size() < 2) return c;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(a.size()), mb /= static_cast<double>(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
  if (saa > 0 && sbb > 0) c.pearson_r = sab / std::sqrt(saa * sbb);
  return c;
}

}  // namespace circuitlab::analysis
