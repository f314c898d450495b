// FactoredMatrix against dense Eigen on the materialised product: eigenvalues, SVD, norms,
// products, collapse. Tolerance: 1e-9 relative (double, matrices of size ≤ 40).
#include <gtest/gtest.h>

#include <algorithm>
#include <complex>

#include "analysis/factored_matrix.h"
#include "dense_reference.h"

namespace circuitlab::analysis {
namespace {

using testing::Close;
using testing::fro;

constexpr double kRtol = 1e-9, kAtol = 1e-10;

Mat rnd(int r, int c, int seed) {
  std::srand(seed);
  return Mat::Random(r, c);
}

std::vector<std::complex<double>> sorted_nonzero(const CVec& ev, double tol) {
  std::vector<std::complex<double>> v;
  for (int i = 0; i < ev.size(); ++i)
    if (std::abs(ev[i]) > tol) v.push_back(ev[i]);
  std::sort(v.begin(), v.end(), [](auto a, auto b) { return a.real() != b.real() ? a.real() < b.real() : a.imag() < b.imag(); });
  return v;
}

TEST(FactoredMatrix, EigenvaluesMatchDenseProduct) {
  for (auto [l, m] : std::vector<std::pair<int, int>>{{9, 3}, {7, 7}, {4, 6}}) {
    FactoredMatrix f(rnd(l, m, 1 + l), rnd(m, l, 2 + m));
    Eigen::EigenSolver<Mat> es(f.AB(), false);
    auto want = sorted_nonzero(es.eigenvalues(), 1e-9);
    auto got = sorted_nonzero(f.eigenvalues(), 1e-9);
    ASSERT_EQ(got.size(), want.size()) << "l=" << l << " m=" << m;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LT(std::abs(got[i] - want[i]), 1e-9 * (1 + std::abs(want[i]))) << "eigenvalue " << i;
    EXPECT_NEAR(eigen_positivity(f.eigenvalues()), testing::dense_positivity(f.AB()), 1e-9);
  }
}

TEST(FactoredMatrix, SvdReconstructsAndMatchesDenseSingularValues) {
  for (auto [l, m, r] : std::vector<std::tuple<int, int, int>>{{10, 3, 8}, {5, 6, 7}, {6, 2, 3}}) {
    FactoredMatrix f(rnd(l, m, l * 7), rnd(m, r, r * 11));
    auto s = f.svd();
    Mat rec = s.U * s.S.asDiagonal() * s.V.transpose();
    Mat ab = f.AB();
    EXPECT_LT((rec - ab).cwiseAbs().maxCoeff(), 1e-10) << "reconstruction";
    Eigen::JacobiSVD<Mat> ref(ab);
    for (int i = 0; i < s.S.size(); ++i) EXPECT_NEAR(s.S[i], ref.singularValues()[i], 1e-10 * (1 + ref.singularValues()[0]));
    EXPECT_LT((s.U.transpose() * s.U - Mat::Identity(s.U.cols(), s.U.cols())).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_LT((s.V.transpose() * s.V - Mat::Identity(s.V.cols(), s.V.cols())).cwiseAbs().maxCoeff(), 1e-10);
  }
}

TEST(FactoredMatrix, NormsProductsAndCollapse) {
  Close close{kRtol, kAtol};
  FactoredMatrix f(rnd(12, 4, 3), rnd(4, 12, 4));
  FactoredMatrix g(rnd(12, 5, 5), rnd(5, 9, 6));
  EXPECT_TRUE(close(f.frobenius_norm(), fro(f.AB())));
  EXPECT_TRUE(close((f * g).frobenius_norm(), fro(f.AB() * g.AB())));
  EXPECT_LT(((f * g).AB() - f.AB() * g.AB()).cwiseAbs().maxCoeff(), 1e-10);
  Mat x = rnd(12, 3, 8);
  EXPECT_LT(((f * x).AB() - f.AB() * x).cwiseAbs().maxCoeff(), 1e-10);
  Mat y = rnd(2, 12, 9);
  EXPECT_LT(((y * f).AB() - y * f.AB()).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((f.T().AB() - f.AB().transpose()).cwiseAbs().maxCoeff(), 1e-12);
  // Dropping the orthonormal factor keeps product norms: ‖collapse_l(f)·G‖ = ‖f·G‖.
  EXPECT_TRUE(close(fro(f.collapse_l() * g.AB()), fro(f.AB() * g.AB())));
  EXPECT_TRUE(close(fro(y * f.collapse_r()), fro(y * f.AB())));
  EXPECT_TRUE(close(composition_score(f, g), fro(f.AB() * g.AB()) / (fro(f.AB()) * fro(g.AB()))));
  Mat rows = f.rows_of({3, 0, 7});
  for (int i : {0, 1, 2}) EXPECT_LT((rows.row(i) - f.AB().row(std::vector<int>{3, 0, 7}[i])).cwiseAbs().maxCoeff(), 1e-12);
  Mat cols = f.cols_of({5, 1});
  EXPECT_LT((cols.col(1) - f.AB().col(1)).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(FactoredMatrix, CyclicShortcutIsNotTheNorm) {
  // The erratum: ‖ABC‖ ≠ ‖BCA‖ in general; our product norm must equal the materialised one.
  FactoredMatrix f(rnd(8, 2, 21), rnd(2, 8, 22));
  FactoredMatrix g(rnd(8, 2, 23), rnd(2, 8, 24));
  const double truth = fro(f.AB() * g.AB());
  const double cyclic = fro(f.B() * g.AB() * f.A());
  EXPECT_GT(std::abs(truth - cyclic), 1e-3 * truth) << "test matrices too special";
  EXPECT_NEAR((f * g).frobenius_norm(), truth, 1e-10 * truth);
}

TEST(FactoredMatrix, ShapeMismatchIsAnError) {
  EXPECT_THROW(FactoredMatrix(Mat::Zero(3, 2), Mat::Zero(3, 3)), std::runtime_error);
  EXPECT_TRUE(std::isnan(eigen_positivity(CVec::Zero(3))));
}

}  // namespace
}  // namespace circuitlab::analysis
