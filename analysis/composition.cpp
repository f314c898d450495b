// Composition scores through Gram inner products (see composition.h).
#include "analysis/composition.h"

#include <cmath>

namespace circuitlab::analysis {

double CompositionScores::at(CompKind kind, int l1, int h1, int l2, int h2) const {
  const auto& s = kind == CompKind::Q ? q : kind == CompKind::K ? k : v;
  return s[index(l1, h1, l2, h2)];
}

double composition_score_pair(const CircuitWeights& w, CompKind kind, int l1, int h1, int l2, int h2) {
  FactoredMatrix left = w.OV(l1, h1);
  FactoredMatrix right = kind == CompKind::Q ? w.QK(l2, h2) : kind == CompKind::K ? w.QK(l2, h2).T() : w.OV(l2, h2);
  return composition_score(left, right);
}

namespace {

// R factor of a thin QR of X [n, m] (n ≥ m): X = Q·R, R [m, m]; XᵀX = RᵀR.
Mat r_factor(const Mat& X) {
  Eigen::HouseholderQR<Mat> qr(X);
  const Eigen::Index k = std::min(X.rows(), X.cols());
  return qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}

}  // namespace

CompositionScores composition_scores(const CircuitWeights& w, torch::Dtype dtype) {
  torch::NoGradGuard ng;
  CompositionScores out;
  out.L = w.L;
  out.H = w.H;
  const size_t n = static_cast<size_t>(w.L) * w.H * w.L * w.H;
  out.q.assign(n, 0.0);
  out.k.assign(n, 0.0);
  out.v.assign(n, 0.0);
  if (w.L < 2) return out;
  const int D = w.D, H = w.H;

  // Left (OV^{h1} = W_V·W_O): W_V = Q·R ⇒ ‖OV·X‖ = ‖(R·W_O)·X‖; M = R·W_O [Dh, D].
  // Right (X = c·d): dᵀ = Q·R ⇒ ‖Y·X‖ = ‖Y·(c·Rᵀ)‖; N = c·Rᵀ [D, Dh].
  //   q: X = W_Q·W_Kᵀ (c = W_Q, dᵀ = W_K); k: X = W_K·W_Qᵀ; v: X = W_V·W_O (dᵀ = W_Oᵀ).
  // Score² = ‖M·N‖² / (‖M‖²‖N‖²) and ‖M·N‖² = ⟨MᵀM, N·Nᵀ⟩ (D×D Grams, flattened).
  auto stack_grams = [&](const std::vector<Mat>& factors, bool left) {
    // factors: each [Dh, D] (left) or [D, Dh] (right) -> Grams [n, D*D] in dtype, norms² [n]
    const int64_t m = static_cast<int64_t>(factors.size());
    const int64_t dh = left ? factors[0].rows() : factors[0].cols();
    torch::Tensor f = torch::empty({m, dh, D}, torch::kFloat64);  // stored as [Dh, D] either way
    for (int64_t i = 0; i < m; ++i) f[i].copy_(to_torch(left ? factors[i] : Mat(factors[i].transpose())));
    f = f.to(dtype);
    torch::Tensor gram = torch::bmm(f.transpose(1, 2), f);  // [m, D, D]
    return gram.reshape({m, static_cast<int64_t>(D) * D});
  };

  std::vector<Mat> M(w.L * H), Nq(w.L * H), Nk(w.L * H), Nv(w.L * H);
  std::vector<double> nM(w.L * H), nq(w.L * H), nk(w.L * H), nv(w.L * H);
  for (int l = 0; l < w.L; ++l)
    for (int h = 0; h < H; ++h) {
      const int i = w.idx(l, h);
      if (l < w.L - 1) {
        M[i] = r_factor(w.W_V[i]) * w.W_O[i];
        nM[i] = M[i].squaredNorm();
      }
      if (l > 0) {
        Nq[i] = w.W_Q[i] * r_factor(w.W_K[i]).transpose();
        Nk[i] = w.W_K[i] * r_factor(w.W_Q[i]).transpose();
        Nv[i] = w.W_V[i] * r_factor(w.W_O[i].transpose()).transpose();
        nq[i] = Nq[i].squaredNorm();
        nk[i] = Nk[i].squaredNorm();
        nv[i] = Nv[i].squaredNorm();
      }
    }
  std::vector<Mat> leftM(M.begin(), M.begin() + (w.L - 1) * H);
  torch::Tensor GL = stack_grams(leftM, true);  // [(L-1)*H, D*D]
  for (int l2 = 1; l2 < w.L; ++l2) {
    std::vector<Mat> right;
    for (const auto* src : {&Nq, &Nk, &Nv})
      for (int h = 0; h < H; ++h) right.push_back((*src)[w.idx(l2, h)]);
    torch::Tensor GR = stack_grams(right, false);                            // [3H, D*D]
    torch::Tensor ip = torch::matmul(GL.narrow(0, 0, l2 * H), GR.t()).to(torch::kFloat64).contiguous();  // [l2*H, 3H]
    const double* p = ip.data_ptr<double>();
    for (int j1 = 0; j1 < l2 * H; ++j1)
      for (int kind = 0; kind < 3; ++kind)
        for (int h2 = 0; h2 < H; ++h2) {
          const int i2 = w.idx(l2, h2);
          const double nr = kind == 0 ? nq[i2] : kind == 1 ? nk[i2] : nv[i2];
          const double denom = nM[j1] * nr;
          const double val = p[static_cast<size_t>(j1) * 3 * H + kind * H + h2];
          const double s = denom > 0 ? std::sqrt(std::max(0.0, val) / denom) : 0.0;
          auto& dst = kind == 0 ? out.q : kind == 1 ? out.k : out.v;
          dst[out.index(j1 / H, j1 % H, l2, h2)] = s;
        }
  }
  return out;
}

CompositionBaseline random_composition_baseline(int d_model, int d_head, int n_samples, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t n = n_samples;
  auto randn = [&](int64_t r, int64_t c) { return at::normal(0.0, 1.0, {n, r, c}, gen, opt); };
  torch::Tensor a1 = randn(d_model, d_head), a2 = randn(d_model, d_head);
  torch::Tensor b1 = randn(d_model, d_head), b2 = randn(d_model, d_head);
  // A = a1·a2ᵀ, B = b1·b2ᵀ; A·B = a1·(a2ᵀb1)·b2ᵀ. With Gram matrices g = xᵀx [Dh, Dh]:
  // ‖A‖² = ⟨g(a1), g(a2)⟩, ‖B‖² = ⟨g(b1), g(b2)⟩, ‖AB‖² = tr(Cᵀ g(a1) C g(b2)), C = a2ᵀb1.
  auto gram = [](const torch::Tensor& x) { return torch::bmm(x.transpose(1, 2), x); };
  torch::Tensor ga1 = gram(a1), ga2 = gram(a2), gb1 = gram(b1), gb2 = gram(b2);
  torch::Tensor C = torch::bmm(a2.transpose(1, 2), b1);
  torch::Tensor nA = (ga1 * ga2).sum(std::vector<int64_t>{1, 2}), nB = (gb1 * gb2).sum(std::vector<int64_t>{1, 2});
  torch::Tensor nAB = (torch::bmm(torch::bmm(C.transpose(1, 2), ga1), C) * gb2).sum(std::vector<int64_t>{1, 2});
  torch::Tensor score = torch::sqrt(nAB / (nA * nB));
  CompositionBaseline b;
  b.mean = score.mean().item<double>();
  b.std = n > 1 ? score.std().item<double>() : 0.0;
  b.n_samples = n_samples;
  b.inv_sqrt_d_model = 1.0 / std::sqrt(static_cast<double>(d_model));
  return b;
}

}  // namespace circuitlab::analysis
