// Low-rank circuits kept as a product of two factors, M = A·B (A [l, m], B [m, r]), as in the
// paper's appendix "Working with Low-Rank Matrices" and TransformerLens's FactoredMatrix.
// Eigenvalues, SVD and Frobenius norms come from the factors (m×m work, never l×r); all in
// double precision (Eigen). Not a lazy expression library: products are evaluated eagerly.
#pragma once
#include <vector>

#include <Eigen/Dense>

namespace circuitlab::analysis {

using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;
using CVec = Eigen::VectorXcd;

class FactoredMatrix {
 public:
  // A [l, m], B [m, r]; Error (circuitlab::Error) when the inner dimensions differ.
  FactoredMatrix(Mat A, Mat B);

  Eigen::Index rows() const { return A_.rows(); }
  Eigen::Index cols() const { return B_.cols(); }
  Eigen::Index mdim() const { return A_.cols(); }
  const Mat& A() const { return A_; }
  const Mat& B() const { return B_; }

  Mat AB() const { return A_ * B_; }  // [l, r] — materialises; for small matrices and tests
  Mat BA() const;                     // [m, m]; needs l == r
  FactoredMatrix T() const { return FactoredMatrix(B_.transpose(), A_.transpose()); }

  // The min(l, m) nonzero-capable eigenvalues of AB (square): λ(AB) = λ(BA) plus zeros, so the
  // m×m product BA is solved when m ≤ l (else AB itself). Order as Eigen returns them.
  CVec eigenvalues() const;

  // Thin SVD AB = U·diag(S)·Vᵀ from thin QR of A and Bᵀ and an SVD of the small core
  // Ra·Rbᵀ: U [l, k], S [k] descending, V [r, k], k = min(l, m, r).
  struct SVD {
    Mat U;
    Vec S;
    Mat V;
  };
  SVD svd() const;

  // Exact ‖AB‖_F = sqrt(tr((AᵀA)(BBᵀ))): no cyclic shortcut (the paper's erratum).
  double frobenius_norm() const;

  // TransformerLens's collapse: S·Vᵀ [k, r] (drops U) and U·S [l, k] (drops V). Norms of
  // products with these equal the norms of products with AB (orthonormal factors dropped).
  Mat collapse_l() const;
  Mat collapse_r() const;

  // Products stay factored; the inner dimension is the smaller bottleneck.
  FactoredMatrix operator*(const Mat& right) const;                // (A, B·right)
  FactoredMatrix operator*(const FactoredMatrix& right) const;
  friend FactoredMatrix operator*(const Mat& left, const FactoredMatrix& f);  // (left·A, B)

  // Materialises only the selected rows / columns: A(idx, :)·B [n, r], A·B(:, idx) [l, n].
  Mat rows_of(const std::vector<int>& idx) const;
  Mat cols_of(const std::vector<int>& idx) const;

 private:
  Mat A_, B_;
};

// Eigenvalue positivity Σ Re λ / Σ |λ| (complex modulus) ∈ [-1, 1]; NaN when all λ are 0.
double eigen_positivity(const CVec& ev);

// Composition score ‖L·R‖_F / (‖L‖_F ‖R‖_F) with the true norm of the product.
double composition_score(const FactoredMatrix& left, const FactoredMatrix& right);

}  // namespace circuitlab::analysis
