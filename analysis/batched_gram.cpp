// Block-upper-triangular Gram products (see batched_gram.h).
#include "analysis/batched_gram.h"
#include "models/gemm.h"

#include <algorithm>

namespace circuitlab::analysis {

std::vector<std::pair<int64_t, int64_t>> column_blocks(int64_t n, int blocks) {
  const int64_t b = std::max<int64_t>(1, std::min<int64_t>(blocks, n));
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t start = 0;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = n / b + (i < n % b ? 1 : 0);
    out.emplace_back(start, len);
    start += len;
  }
  return out;
}

torch::Tensor gram_tn(const torch::Tensor& X, int blocks) {
  TORCH_CHECK(X.dim() == 2, "gram_tn: expected a 2-D matrix, got ", X.dim(), "-D");
  const int64_t C = X.size(1);
  torch::Tensor out = torch::empty({C, C}, X.options());  // [C, C]
  const auto bl = column_blocks(C, blocks);
  for (size_t a = 0; a < bl.size(); ++a)
    for (size_t b = a; b < bl.size(); ++b) {
      // X[:, a]ᵀ·X[:, b]: strided column slices go to BLAS as they are (leading dimension C).
      torch::Tensor blk = models::gemm::mm(X.narrow(1, bl[a].first, bl[a].second).t(), X.narrow(1, bl[b].first, bl[b].second));
      out.narrow(0, bl[a].first, bl[a].second).narrow(1, bl[b].first, bl[b].second).copy_(blk);
      if (b != a) out.narrow(0, bl[b].first, bl[b].second).narrow(1, bl[a].first, bl[a].second).copy_(blk.t());
    }
  return out;
}

PackedSym packed_sym_products(const torch::Tensor& A, const torch::Tensor& B, double offdiag_scale, int blocks) {
  TORCH_CHECK(A.dim() == 3 && A.sizes() == B.sizes(), "packed_sym_products: expected two [n, r, C] stacks of one shape, got ",
              A.sizes(), " and ", B.sizes());
  const int64_t n = A.size(0);
  const auto bl = column_blocks(A.size(2), blocks);
  // Contiguous copies of the column blocks (small: n·r·C), so every bmm reads dense operands.
  std::vector<torch::Tensor> Ab, Bb;
  for (const auto& c : bl) {
    Ab.push_back(A.narrow(2, c.first, c.second).transpose(1, 2).contiguous());  // [n, |a|, r]
    Bb.push_back(B.narrow(2, c.first, c.second).contiguous());                  // [n, r, |b|]
  }
  PackedSym out;
  for (size_t a = 0; a < bl.size(); ++a)
    for (size_t b = a; b < bl.size(); ++b) {
      torch::Tensor blk = models::gemm::bmm(Ab[a], Bb[b]);  // [n, |a|, |b|]
      if (b != a && offdiag_scale != 1.0) blk.mul_(offdiag_scale);
      out.push_back(blk.view({n, bl[a].second * bl[b].second}));
    }
  return out;
}

torch::Tensor packed_inner(const PackedSym& left, int64_t rows, const PackedSym& right) {
  TORCH_CHECK(left.size() == right.size() && !left.empty(), "packed_inner: block lists differ (", left.size(), " vs ",
              right.size(), ")");
  torch::Tensor acc;
  for (size_t k = 0; k < left.size(); ++k) {
    torch::Tensor t = models::gemm::mm(left[k].narrow(0, 0, rows), right[k].t());  // [rows, m]
    acc = k == 0 ? t.to(torch::kFloat64) : acc.add_(t);
  }
  return acc;
}

}  // namespace circuitlab::analysis
