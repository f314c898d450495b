// Composition scores through Gram inner products (see composition.h).
#include "analysis/composition.h"

#include <algorithm>
#include <cmath>

#include "analysis/batched_gram.h"
#include "models/gemm.h"

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
  const int H = w.H;
  const int64_t NL = static_cast<int64_t>(w.L - 1) * H;  // heads that can be a left (earlier) factor
  const StackedHeads& s = w.stacked;

  // Score² = ‖X·Y‖² / (‖X‖²‖Y‖²) and ‖X·Y‖² = ⟨XᵀX, Y·Yᵀ⟩ (D×D, symmetric), exact. With the
  // Dh×Dh Grams S_V = W_VᵀW_V, S_O = W_O·W_Oᵀ, S_Q = W_QᵀW_Q, S_K = W_KᵀW_K (double):
  //   left  X = OV^{h1} = W_V·W_O:          XᵀX = W_Oᵀ·S_V·W_O
  //   right Y = QK^{h2} = W_Q·W_Kᵀ (q):     Y·Yᵀ = W_Q·S_K·W_Qᵀ
  //         Y = (QK^{h2})ᵀ = W_K·W_Qᵀ (k):  Y·Yᵀ = W_K·S_Q·W_Kᵀ
  //         Y = OV^{h2} = W_V·W_O (v):      Y·Yᵀ = W_V·S_O·W_Vᵀ
  // and ‖X‖² = ⟨S_V, S_O⟩, ‖Y‖² = ⟨S_Q, S_K⟩ or ⟨S_V, S_O⟩. sym_product_inner forms the D×D
  // products block by block (upper column blocks only, dtype) and takes all inner products of
  // one block pair with a GEMM per group of later layers.
  const torch::Tensor &S_Q = s.S_Q, &S_K = s.S_K, &S_V = s.S_V, &S_O = s.S_O;  // [N, Dh, Dh]
  auto inner = [](const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum({1, 2}); };
  torch::Tensor n_ov = inner(S_V, S_O), n_qk = inner(S_Q, S_K);  // [N] squared norms, double
  const double* nov = n_ov.data_ptr<double>();
  const double* nqk = n_qk.data_ptr<double>();
  const int64_t NR = static_cast<int64_t>(w.L - 1) * H, Dh = w.Dh, D = w.D;
  const auto opt = torch::TensorOptions().dtype(dtype);

  // Left factors [NL, Dh, D]: XᵀX = W_Oᵀ·(S_V·W_O).
  torch::Tensor LA = s.O.narrow(0, 0, NL).to(dtype);
  torch::Tensor LB = torch::empty({NL, Dh, D}, opt);
  models::gemm::bmm_into(LB, S_V.narrow(0, 0, NL).to(dtype), LA);
  // Right factors of the later heads [(L−1)·3·H, Dh, D], ordered (layer, kind q/k/v, head), written
  // in place: RA = W_Qᵀ, W_Kᵀ, W_Vᵀ; RB = S_K·W_Qᵀ, S_Q·W_Kᵀ, S_O·W_Vᵀ.
  torch::Tensor RA = torch::empty({w.L - 1, 3, H, Dh, D}, opt), RB = torch::empty({w.L - 1, 3, H, Dh, D}, opt);
  const torch::Tensor* factor[3] = {&s.Q, &s.K, &s.V};
  const torch::Tensor* core[3] = {&S_K, &S_Q, &S_O};
  for (int l2 = 1; l2 < w.L; ++l2)
    for (int kind = 0; kind < 3; ++kind) {
      torch::Tensor ra = RA[l2 - 1][kind], rb = RB[l2 - 1][kind];  // [H, Dh, D]
      ra.copy_(factor[kind]->narrow(0, static_cast<int64_t>(l2) * H, H).transpose(1, 2));
      models::gemm::bmm_into(rb, core[kind]->narrow(0, static_cast<int64_t>(l2) * H, H).to(dtype), ra);
    }
  RA = RA.view({3 * NR, Dh, D});
  RB = RB.view({3 * NR, Dh, D});
  // Later layers in groups (one inner-product GEMM each per block pair): group [a, b] needs the
  // left rows of layers < b. A few groups keep the GEMMs wide and the unneeded pairs few.
  const int n_groups = static_cast<int>(std::clamp<int64_t>(3 * NR / 128, 1, w.L - 1));
  std::vector<InnerGroup> groups;
  for (const auto& g : column_blocks(w.L - 1, n_groups)) {  // later layers g.first+1 .. g.first+g.second
    const int64_t last = g.first + g.second;                 // 1-based index of the group's last layer
    groups.push_back({last * H, g.first * 3 * H, g.second * 3 * H});
  }
  torch::Tensor ip = sym_product_inner(LA, LB, RA, RB, groups).contiguous();  // [NL, 3·NR] double
  const double* p = ip.data_ptr<double>();
  for (int l2 = 1; l2 < w.L; ++l2)
    for (int kind = 0; kind < 3; ++kind)
      for (int h2 = 0; h2 < H; ++h2) {
        const int i2 = w.idx(l2, h2);
        const double nr = kind == 2 ? nov[i2] : nqk[i2];
        const int64_t col = ((static_cast<int64_t>(l2) - 1) * 3 + kind) * H + h2;
        auto& dst = kind == 0 ? out.q : kind == 1 ? out.k : out.v;
        for (int j1 = 0; j1 < l2 * H; ++j1) {
          const double denom = nov[j1] * nr;
          const double val = p[static_cast<size_t>(j1) * 3 * NR + col];
          dst[out.index(j1 / H, j1 % H, l2, h2)] = denom > 0 ? std::sqrt(std::max(0.0, val) / denom) : 0.0;
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
