// The batched building blocks of the fast weight analyses: block-triangular Grams and inner
// products of symmetric products against plain loops, the batched per-head positivity against the
// one-head-at-a-time cores, and the float32 large-GEMM path against float64 on a model with
// more than one column block per side. Tolerances: 1e-10 relative in double, 1e-4 for float32.
#include <gtest/gtest.h>

#include "analysis/batched_gram.h"
#include "analysis/circuit_weights.h"
#include "analysis/composition.h"
#include "analysis/eigen_positivity.h"
#include "dense_reference.h"

namespace circuitlab::analysis {
namespace {

constexpr double kRtol = 1e-10, kAtol = 1e-12;

void expect_close_tensor(const torch::Tensor& got, const torch::Tensor& want, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  torch::Tensor excess = (got - want).abs() - (atol + rtol * want.abs());
  const int64_t worst = excess.flatten().argmax().item<int64_t>();
  EXPECT_LE(excess.flatten()[worst].item<double>(), 0)
      << what << ": worst mismatch at flat index " << worst << ": " << got.flatten()[worst].item<double>() << " vs "
      << want.flatten()[worst].item<double>();
}

TEST(BatchedGram, ColumnBlocksCoverEveryColumnOnce) {
  for (int64_t n : {1, 5, 13, 768})
    for (int b : {1, 2, 3, 4, 7, 20}) {
      auto bl = column_blocks(n, b);
      int64_t next = 0;
      for (const auto& p : bl) {
        EXPECT_EQ(p.first, next);
        EXPECT_GE(p.second, 1);
        next += p.second;
      }
      EXPECT_EQ(next, n) << "n=" << n << " blocks=" << b;
      EXPECT_LE(bl.size(), static_cast<size_t>(std::max(1, b)));
    }
}

TEST(BatchedGram, GramMatchesLoops) {
  torch::manual_seed(3);
  torch::Tensor X = torch::randn({41, 13}, torch::kFloat64);
  // loops
  torch::Tensor want = torch::zeros({13, 13}, torch::kFloat64);
  auto x = X.accessor<double, 2>();
  auto w = want.accessor<double, 2>();
  for (int i = 0; i < 13; ++i)
    for (int j = 0; j < 13; ++j)
      for (int r = 0; r < 41; ++r) w[i][j] += x[r][i] * x[r][j];
  for (int b : {1, 2, 3, 4, 5, 13}) expect_close_tensor(gram_tn(X, b), want, kRtol, kAtol, "gram_tn blocks=" + std::to_string(b));
}

TEST(BatchedGram, SymProductInnerGivesFrobeniusInnerProducts) {
  // X_i = A_iᵀ·(S_i·A_i) and Y_j = B_jᵀ·(T_j·B_j) symmetric [C, C]; out[i, j] = ⟨X_i, Y_j⟩ on the
  // entries the groups ask for, 0 elsewhere. float64 and float32 (oneDNN path) inputs.
  torch::manual_seed(4);
  const int64_t n = 5, m = 4, r = 4, C = 11;
  auto sym = [](int64_t k, int64_t d) {
    torch::Tensor s = torch::randn({k, d, d}, torch::kFloat64);
    return s + s.transpose(1, 2);
  };
  torch::Tensor A = torch::randn({n, r, C}, torch::kFloat64), B = torch::randn({m, r, C}, torch::kFloat64);
  torch::Tensor SA = torch::bmm(sym(n, r), A), TB = torch::bmm(sym(m, r), B);
  const std::vector<InnerGroup> groups{{2, 0, 1}, {5, 1, 2}, {0, 3, 1}};  // the last asks for nothing
  torch::Tensor want = torch::zeros({n, m}, torch::kFloat64);
  for (const auto& g : groups)
    for (int64_t i = 0; i < g.rows; ++i)
      for (int64_t j = g.col_begin; j < g.col_begin + g.cols; ++j) {
        Mat X = testing::from_tensor(A[i].t().mm(SA[i])), Y = testing::from_tensor(B[j].t().mm(TB[j]));
        double s = 0;
        for (int a = 0; a < C; ++a)
          for (int b = 0; b < C; ++b) s += X(a, b) * Y(a, b);
        want[i][j] = s;
      }
  for (int b : {1, 2, 3, 4}) {
    torch::Tensor got = sym_product_inner(A, SA, B, TB, groups, b);
    expect_close_tensor(got, want, kRtol, 1e-9, "inner products blocks=" + std::to_string(b));
    auto f = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    torch::Tensor got32 = sym_product_inner(f(A), f(SA), f(B), f(TB), groups, b);
    expect_close_tensor(got32, want, 1e-4, 1e-3, "float32 inner products blocks=" + std::to_string(b));
  }
}

models::ModelConfig medium(bool tied) {
  models::ModelConfig c;
  c.n_layers = 3;
  c.n_heads = 4;
  c.d_model = 48;
  c.d_head = 8;
  c.n_ctx = 16;
  c.d_vocab = 300;
  c.normalization_type = models::Normalization::LN;
  c.tied_unembed = tied;
  if (tied) c.family = models::ModelFamily::Gpt2;
  return c;
}

TEST(BatchedPositivity, MatchesOneHeadAtATime) {
  for (bool tied : {false, true}) {
    auto cfg = medium(tied);
    auto sd = testing::random_state_dict(cfg, 21 + tied);
    CircuitWeights w = fold_circuit_weights(cfg, sd);
    EmbedGrams g = embed_grams(w);
    std::vector<double> prev(cfg.n_layers * cfg.n_heads);
    for (size_t i = 0; i < prev.size(); ++i) prev[i] = double((i * 7) % 11) / 10.0;
    auto pos = head_positivities(w, g, prev);
    testing::Close close{kRtol, 1e-12};
    for (int l = 0; l < cfg.n_layers; ++l)
      for (int h = 0; h < cfg.n_heads; ++h) {
        const auto& p = pos[w.idx(l, h)];
        EXPECT_TRUE(close(p.ov, positivity_of(ov_circuit_core(w, g, l, h)))) << "ov L" << l << "H" << h;
        EXPECT_TRUE(close(p.qk, positivity_of(qk_circuit_core(w, g, l, h)))) << "qk L" << l << "H" << h;
        EXPECT_TRUE(close(p.qk_norm, w.QK(l, h).frobenius_norm()));
        if (l == 0) continue;
        ASSERT_TRUE(p.kcomp.has_value());
        const int j = w.idx(p.kcomp_src_layer, p.kcomp_src_head);
        Mat ovT = (w.W_V(j) * w.W_O(j)).transpose();
        EXPECT_TRUE(close(*p.kcomp, positivity_of(kcomp_circuit_core(w, g, l, h, ovT)))) << "kcomp L" << l << "H" << h;
      }
  }
}

TEST(BatchedPositivity, Float32LargeGemmsStayWithin1e4) {
  // The GPT-2-sized setting: big_dtype float32 for the V- and D×D-sized GEMMs, everything
  // else double. Positivities and composition scores within 1e-4 of the float64 path.
  auto cfg = medium(true);
  auto sd = testing::random_state_dict(cfg, 5);
  FoldOptions f32;
  f32.big_dtype = torch::kFloat32;
  CircuitWeights w64 = fold_circuit_weights(cfg, sd), w32 = fold_circuit_weights(cfg, sd, f32);
  auto p64 = head_positivities(w64, embed_grams(w64), {});
  auto p32 = head_positivities(w32, embed_grams(w32), {});
  for (size_t i = 0; i < p64.size(); ++i) {
    EXPECT_NEAR(p32[i].ov, p64[i].ov, 1e-4) << "head " << i;
    EXPECT_NEAR(p32[i].qk, p64[i].qk, 1e-4) << "head " << i;
  }
  auto c64 = composition_scores(w64, torch::kFloat64), c32 = composition_scores(w32, torch::kFloat32);
  double worst = 0;
  for (size_t i = 0; i < c64.q.size(); ++i)
    worst = std::max({worst, std::abs(c32.q[i] - c64.q[i]), std::abs(c32.k[i] - c64.k[i]), std::abs(c32.v[i] - c64.v[i])});
  EXPECT_LE(worst, 1e-4) << "worst composition difference float32 vs float64";
}

TEST(BatchedComposition, LayerGroupsMatchOnePairAtATime) {
  // Enough later heads (3·(L−1)·H ≥ 256) that the inner products run in several layer groups;
  // every pair, both dtypes, against the FactoredMatrix definition.
  models::ModelConfig cfg = medium(false);
  cfg.n_layers = 4;
  cfg.n_heads = 30;
  cfg.d_model = 16;
  cfg.d_head = 4;
  auto sd = testing::random_state_dict(cfg, 8);
  FoldOptions f32;
  f32.big_dtype = torch::kFloat32;
  CircuitWeights w = fold_circuit_weights(cfg, sd), w32 = fold_circuit_weights(cfg, sd, f32);
  CompositionScores c = composition_scores(w, torch::kFloat64), c32 = composition_scores(w32, torch::kFloat32);
  testing::Close close{1e-9, 1e-12};
  double worst32 = 0;
  for (int l1 = 0; l1 < cfg.n_layers; ++l1)
    for (int h1 = 0; h1 < cfg.n_heads; ++h1)
      for (int l2 = 0; l2 < cfg.n_layers; ++l2)
        for (int h2 = 0; h2 < cfg.n_heads; ++h2)
          for (CompKind kind : {CompKind::Q, CompKind::K, CompKind::V}) {
            const double want = l1 < l2 ? composition_score_pair(w, kind, l1, h1, l2, h2) : 0.0;
            ASSERT_TRUE(close(c.at(kind, l1, h1, l2, h2), want))
                << "kind " << int(kind) << " L" << l1 << "H" << h1 << " -> L" << l2 << "H" << h2;
            worst32 = std::max(worst32, std::abs(c32.at(kind, l1, h1, l2, h2) - want));
          }
  EXPECT_LE(worst32, 1e-4) << "worst float32 composition difference";
}

}  // namespace
}  // namespace circuitlab::analysis
