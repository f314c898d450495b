// Block-upper-triangular Gram products (see batched_gram.h).
#include "analysis/batched_gram.h"

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
      torch::Tensor blk = torch::mm(X.narrow(1, bl[a].first, bl[a].second).t(), X.narrow(1, bl[b].first, bl[b].second));
      out.narrow(0, bl[a].first, bl[a].second).narrow(1, bl[b].first, bl[b].second).copy_(blk);
      if (b != a) out.narrow(0, bl[b].first, bl[b].second).narrow(1, bl[a].first, bl[a].second).copy_(blk.t());
    }
  return out;
}

torch::Tensor packed_sym_products(const torch::Tensor& A, const torch::Tensor& B, double offdiag_scale, int blocks) {
  TORCH_CHECK(A.dim() == 3 && A.sizes() == B.sizes(), "packed_sym_products: expected two [n, r, C] stacks of one shape, got ",
              A.sizes(), " and ", B.sizes());
  const int64_t n = A.size(0), C = A.size(2);
  if (blocks <= 1) return torch::bmm(A.transpose(1, 2), B).reshape({n, C * C});  // one block: AᵀB itself
  const auto bl = column_blocks(C, blocks);
  int64_t P = 0;
  for (size_t a = 0; a < bl.size(); ++a)
    for (size_t b = a; b < bl.size(); ++b) P += bl[a].second * bl[b].second;
  torch::Tensor out = torch::empty({n, P}, A.options());  // [n, P]
  int64_t off = 0;
  for (size_t a = 0; a < bl.size(); ++a) {
    torch::Tensor At = A.narrow(2, bl[a].first, bl[a].second).transpose(1, 2);  // [n, |a|, r]
    for (size_t b = a; b < bl.size(); ++b) {
      const int64_t sz = bl[a].second * bl[b].second;
      torch::Tensor blk = torch::bmm(At, B.narrow(2, bl[b].first, bl[b].second));  // [n, |a|, |b|]
      if (b != a && offdiag_scale != 1.0) blk.mul_(offdiag_scale);
      out.narrow(1, off, sz).copy_(blk.reshape({n, sz}));
      off += sz;
    }
  }
  return out;
}

}  // namespace circuitlab::analysis
