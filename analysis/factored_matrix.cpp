// FactoredMatrix: eigenvalues through the smaller product, SVD through QR of the factors,
// exact Frobenius norms through Gram matrices. Double precision throughout.
#include "analysis/factored_matrix.h"

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace circuitlab::analysis {

FactoredMatrix::FactoredMatrix(Mat A, Mat B) : A_(std::move(A)), B_(std::move(B)) {
  if (A_.cols() != B_.rows())
    fail("FactoredMatrix: inner dimensions differ (A is " + std::to_string(A_.rows()) + "x" +
         std::to_string(A_.cols()) + ", B is " + std::to_string(B_.rows()) + "x" + std::to_string(B_.cols()) + ")");
}

Mat FactoredMatrix::BA() const {
  if (rows() != cols()) fail("FactoredMatrix::BA: AB is not square");
  return B_ * A_;
}

CVec FactoredMatrix::eigenvalues() const {
  if (rows() != cols()) fail("FactoredMatrix::eigenvalues: AB is not square");
  Mat small = mdim() <= rows() ? Mat(B_ * A_) : Mat(A_ * B_);
  Eigen::EigenSolver<Mat> es(small, /*computeEigenvectors=*/false);
  if (es.info() != Eigen::Success) fail("FactoredMatrix::eigenvalues: eigen solver did not converge");
  return es.eigenvalues();
}

namespace {
// Thin QR of X [n, m]: Q [n, k] orthonormal columns, R [k, m], k = min(n, m).
void thin_qr(const Mat& X, Mat& Q, Mat& R) {
  const Eigen::Index k = std::min(X.rows(), X.cols());
  Eigen::HouseholderQR<Mat> qr(X);
  Q = qr.householderQ() * Mat::Identity(X.rows(), k);
  R = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}
}  // namespace

FactoredMatrix::SVD FactoredMatrix::svd() const {
  Mat Qa, Ra, Qb, Rb;
  thin_qr(A_, Qa, Ra);              // A = Qa·Ra
  thin_qr(B_.transpose(), Qb, Rb);  // Bᵀ = Qb·Rb, so B = Rbᵀ·Qbᵀ
  Mat core = Ra * Rb.transpose();   // [ka, kb]
  Eigen::BDCSVD<Mat> s(core, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::Index k = std::min({rows(), mdim(), cols()});
  SVD out;
  out.U = (Qa * s.matrixU()).leftCols(k);
  out.S = s.singularValues().head(k);
  out.V = (Qb * s.matrixV()).leftCols(k);
  return out;
}

double FactoredMatrix::frobenius_norm() const {
  // ‖AB‖² = tr(Bᵀ AᵀA B) = Σ_ij (AᵀA)_ij (BBᵀ)_ji = ⟨AᵀA, BBᵀ⟩ (both symmetric).
  Mat ga = A_.transpose() * A_;
  Mat gb = B_ * B_.transpose();
  double s = (ga.array() * gb.array()).sum();
  return std::sqrt(std::max(0.0, s));
}

Mat FactoredMatrix::collapse_l() const {
  SVD s = svd();
  return s.S.asDiagonal() * s.V.transpose();
}

Mat FactoredMatrix::collapse_r() const {
  SVD s = svd();
  return s.U * s.S.asDiagonal();
}

FactoredMatrix FactoredMatrix::operator*(const Mat& right) const {
  if (cols() != right.rows()) fail("FactoredMatrix: cannot multiply, shapes differ");
  return FactoredMatrix(A_, B_ * right);
}

FactoredMatrix FactoredMatrix::operator*(const FactoredMatrix& right) const {
  if (cols() != right.rows()) fail("FactoredMatrix: cannot multiply, shapes differ");
  // (A·(B·A2))·B2 with inner dim right.mdim(), or A·((B·A2)·B2) with inner dim mdim().
  Mat mid = B_ * right.A_;
  if (right.mdim() < mdim()) return FactoredMatrix(A_ * mid, right.B_);
  return FactoredMatrix(A_, mid * right.B_);
}

FactoredMatrix operator*(const Mat& left, const FactoredMatrix& f) {
  if (left.cols() != f.rows()) fail("FactoredMatrix: cannot multiply, shapes differ");
  return FactoredMatrix(left * f.A_, f.B_);
}

Mat FactoredMatrix::rows_of(const std::vector<int>& idx) const {
  Mat a(static_cast<Eigen::Index>(idx.size()), mdim());
  for (size_t i = 0; i < idx.size(); ++i) a.row(static_cast<Eigen::Index>(i)) = A_.row(idx[i]);
  return a * B_;
}

Mat FactoredMatrix::cols_of(const std::vector<int>& idx) const {
  Mat b(mdim(), static_cast<Eigen::Index>(idx.size()));
  for (size_t i = 0; i < idx.size(); ++i) b.col(static_cast<Eigen::Index>(i)) = B_.col(idx[i]);
  return A_ * b;
}

double eigen_positivity(const CVec& ev) {
  double num = 0, den = 0;
  for (Eigen::Index i = 0; i < ev.size(); ++i) {
    num += ev[i].real();
    den += std::abs(ev[i]);
  }
  if (den == 0) return std::numeric_limits<double>::quiet_NaN();
  return num / den;
}

double composition_score(const FactoredMatrix& left, const FactoredMatrix& right) {
  const double denom = left.frobenius_norm() * right.frobenius_norm();
  if (denom == 0) return 0.0;
  return (left * right).frobenius_norm() / denom;
}

}  // namespace circuitlab::analysis
