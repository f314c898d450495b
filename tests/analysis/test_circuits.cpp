// Folded weights, eigenvalue positivity and composition scores: the fast paths (Grams, Dh×Dh
// cores, QR-collapsed factors) against dense V×V / D×D matrices built with loops from an
// independent folding (dense_reference.h). Tolerance: 1e-6 relative (the acceptance bar).
#include <gtest/gtest.h>

#include "analysis/circuit_weights.h"
#include "analysis/composition.h"
#include "analysis/eigen_positivity.h"
#include "dense_reference.h"

namespace circuitlab::analysis {
namespace {

using testing::Close;
using testing::dense_positivity;
using testing::fro;

constexpr double kRtol = 1e-6, kAtol = 1e-9;

models::ModelConfig toy(bool ln, bool tied) {
  models::ModelConfig c;
  c.n_layers = 3;
  c.n_heads = 2;
  c.d_model = 12;
  c.d_head = 4;
  c.n_ctx = 16;
  c.d_vocab = 30;
  c.normalization_type = ln ? models::Normalization::LN : models::Normalization::None;
  c.tied_unembed = tied;
  if (tied) c.family = models::ModelFamily::Gpt2;
  return c;
}

struct Case {
  bool ln, tied;
};

class Circuits : public ::testing::TestWithParam<Case> {};

void expect_close_mat(const Mat& got, const Mat& want, const std::string& what) {
  ASSERT_EQ(got.rows(), want.rows()) << what;
  ASSERT_EQ(got.cols(), want.cols()) << what;
  double worst = 0;
  int wi = 0, wj = 0;
  for (int i = 0; i < got.rows(); ++i)
    for (int j = 0; j < got.cols(); ++j) {
      double e = std::abs(got(i, j) - want(i, j)) - (kAtol + kRtol * std::abs(want(i, j)));
      if (e > worst) { worst = e; wi = i; wj = j; }
    }
  EXPECT_LE(worst, 0) << what << ": worst mismatch at (" << wi << "," << wj << "): " << got(wi, wj) << " vs " << want(wi, wj);
}

TEST_P(Circuits, FoldingPositivityAndCompositionMatchDense) {
  const auto [ln, tied] = GetParam();
  auto cfg = toy(ln, tied);
  auto sd = testing::random_state_dict(cfg, 7 + ln + 2 * tied);
  CircuitWeights w = fold_circuit_weights(cfg, sd);
  auto ref = testing::dense_fold(cfg, sd);
  Close close{kRtol, kAtol};

  // 1. folding
  expect_close_mat(to_eigen(w.W_E), ref.E, "W_E'");
  expect_close_mat(to_eigen(w.W_U_folded()), ref.U, "W_U'");
  for (int i = 0; i < cfg.n_layers * cfg.n_heads; ++i) {
    expect_close_mat(w.W_Q(i), ref.Q[i], "W_Q'");
    expect_close_mat(w.W_V(i), ref.Vv[i], "W_V'");
    expect_close_mat(w.W_O(i), ref.O[i], "W_O'");
  }

  // 2. positivity: dense V×V circuits
  EmbedGrams g = embed_grams(w);
  std::vector<double> prev(cfg.n_layers * cfg.n_heads);
  for (size_t i = 0; i < prev.size(); ++i) prev[i] = 0.1 + 0.13 * double((i * 5) % 7);
  auto pos = head_positivities(w, g, prev);
  for (int l = 0; l < cfg.n_layers; ++l)
    for (int h = 0; h < cfg.n_heads; ++h) {
      const int i = l * cfg.n_heads + h;
      Mat ov_full = ref.E * ref.Vv[i] * ref.O[i] * ref.U;             // [V, V]
      Mat qk_full = ref.E * ref.Q[i] * ref.K[i].transpose() * ref.E.transpose();
      const auto& p = pos[i];
      EXPECT_TRUE(close(p.ov, dense_positivity(ov_full))) << "ov L" << l << "H" << h << ": " << p.ov << " vs " << dense_positivity(ov_full);
      EXPECT_TRUE(close(p.qk, dense_positivity(qk_full))) << "qk L" << l << "H" << h;
      EXPECT_TRUE(close(p.ov_resid, dense_positivity(ref.Vv[i] * ref.O[i])));
      EXPECT_TRUE(close(p.ov_norm, fro(ref.Vv[i] * ref.O[i])));
      if (l == 0) {
        EXPECT_FALSE(p.kcomp.has_value());
        continue;
      }
      // strongest prev-token head among earlier layers, by loops
      int best = 0;
      for (int j = 0; j < l * cfg.n_heads; ++j)
        if (prev[j] > prev[best]) best = j;
      ASSERT_TRUE(p.kcomp.has_value());
      EXPECT_EQ(p.kcomp_src_layer * cfg.n_heads + p.kcomp_src_head, best);
      Mat kc = ref.E * ref.Q[i] * ref.K[i].transpose() * (ref.Vv[best] * ref.O[best]).transpose() * ref.E.transpose();
      EXPECT_TRUE(close(*p.kcomp, dense_positivity(kc))) << "kcomp L" << l << "H" << h;
      Mat mix = Mat::Zero(cfg.d_model, cfg.d_model);
      for (int j = 0; j < l * cfg.n_heads; ++j) mix += prev[j] * (ref.Vv[j] * ref.O[j]).transpose();
      Mat kw = ref.E * ref.Q[i] * ref.K[i].transpose() * mix * ref.E.transpose();
      EXPECT_TRUE(close(*p.kcomp_weighted, dense_positivity(kw)));
      EXPECT_TRUE(close(*p.kcomp_trace_weighted, kw.trace()));
    }

  // 3. composition: dense D×D products, all pairs, both precisions of the fast path
  auto cs = composition_scores(w, torch::kFloat64);
  auto cs32 = composition_scores(w, torch::kFloat32);
  for (int l1 = 0; l1 < cfg.n_layers; ++l1)
    for (int h1 = 0; h1 < cfg.n_heads; ++h1)
      for (int l2 = 0; l2 < cfg.n_layers; ++l2)
        for (int h2 = 0; h2 < cfg.n_heads; ++h2) {
          const int i1 = l1 * cfg.n_heads + h1, i2 = l2 * cfg.n_heads + h2;
          Mat ov1 = ref.Vv[i1] * ref.O[i1];
          Mat qk2 = ref.Q[i2] * ref.K[i2].transpose(), ov2 = ref.Vv[i2] * ref.O[i2];
          double q = 0, k = 0, v = 0;
          if (l1 < l2) {
            q = fro(ov1 * qk2) / (fro(ov1) * fro(qk2));
            k = fro(ov1 * qk2.transpose()) / (fro(ov1) * fro(qk2));
            v = fro(ov1 * ov2) / (fro(ov1) * fro(ov2));
            EXPECT_TRUE(close(composition_score_pair(w, CompKind::K, l1, h1, l2, h2), k));
          }
          EXPECT_TRUE(close(cs.at(CompKind::Q, l1, h1, l2, h2), q)) << "q " << l1 << h1 << l2 << h2;
          EXPECT_TRUE(close(cs.at(CompKind::K, l1, h1, l2, h2), k)) << "k " << l1 << h1 << l2 << h2;
          EXPECT_TRUE(close(cs.at(CompKind::V, l1, h1, l2, h2), v)) << "v " << l1 << h1 << l2 << h2;
          // float32 Grams: 1e-4 relative (float rounding of D×D inner products)
          EXPECT_NEAR(cs32.at(CompKind::K, l1, h1, l2, h2), k, 1e-4 * (1 + k));
        }
}

INSTANTIATE_TEST_SUITE_P(Variants, Circuits,
                         ::testing::Values(Case{true, false}, Case{false, false}, Case{true, true}, Case{false, true}));

TEST(CompositionBaseline, RandomPairsAverageOneOverSqrtDModel) {
  // E‖AB‖² = ‖A‖²‖B‖²/D for independent random low-rank A, B (framework-paper.md §2).
  for (int D : {32, 64}) {
    auto b = random_composition_baseline(D, 8, 400, 1);
    EXPECT_NEAR(b.mean, 1.0 / std::sqrt(double(D)), 0.15 / std::sqrt(double(D))) << "D=" << D;
    EXPECT_GT(b.std, 0);
    auto b2 = random_composition_baseline(D, 8, 400, 1);
    EXPECT_EQ(b.mean, b2.mean) << "deterministic in the seed";
  }
}

TEST(CircuitWeights, MissingTensorIsANamedError) {
  auto cfg = toy(true, false);
  auto sd = testing::random_state_dict(cfg, 1);
  sd.erase("blocks.1.attn.W_K");
  try {
    fold_circuit_weights(cfg, sd);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.attn.W_K"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace circuitlab::analysis
