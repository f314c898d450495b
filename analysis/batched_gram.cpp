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

torch::Tensor sym_product_inner(const torch::Tensor& LA, const torch::Tensor& LB, const torch::Tensor& RA,
                                const torch::Tensor& RB, const std::vector<InnerGroup>& groups, int blocks) {
  TORCH_CHECK(LA.dim() == 3 && LA.sizes() == LB.sizes() && RA.dim() == 3 && RA.sizes() == RB.sizes() &&
                  LA.size(2) == RA.size(2) && LA.scalar_type() == RA.scalar_type(),
              "sym_product_inner: expected [nL, r, C] and [nR, r', C] stacks of one dtype in pairs, got ", LA.sizes(), ", ",
              LB.sizes(), ", ", RA.sizes(), ", ", RB.sizes());
  const int64_t nL = LA.size(0), nR = RA.size(0);
  for (const auto& g : groups)
    TORCH_CHECK(g.rows >= 0 && g.rows <= nL && g.col_begin >= 0 && g.cols >= 0 && g.col_begin + g.cols <= nR,
                "sym_product_inner: group out of range");
  torch::Tensor out = torch::zeros({nL, nR}, LA.options().dtype(torch::kFloat64));  // [nL, nR]
  if (nL == 0 || nR == 0) return out;
  const auto bl = column_blocks(LA.size(2), blocks);
  const int64_t most = bl.front().second;  // the first block is the longest
  // Block products of all items, reused for every block pair: [n, |a|·|b|] row-major rows.
  torch::Tensor lbuf = torch::empty({nL, most * most}, LA.options());
  torch::Tensor rbuf = torch::empty({nR, most * most}, RA.options());
  for (size_t a = 0; a < bl.size(); ++a)
    for (size_t b = a; b < bl.size(); ++b) {
      const int64_t la = bl[a].second, lb = bl[b].second;
      // LA[:, :, a]ᵀ·LB[:, :, b]: strided column blocks go to the GEMM as they are.
      torch::Tensor lblk = lbuf.narrow(1, 0, la * lb), rblk = rbuf.narrow(1, 0, la * lb);
      torch::Tensor l3 = lblk.view({nL, la, lb}), r3 = rblk.view({nR, la, lb});
      models::gemm::bmm_into(l3, LA.narrow(2, bl[a].first, la).transpose(1, 2), LB.narrow(2, bl[b].first, lb), 0.0,
                             a == b ? 1.0 : 2.0);
      models::gemm::bmm_into(r3, RA.narrow(2, bl[a].first, la).transpose(1, 2), RB.narrow(2, bl[b].first, lb));
      for (const auto& g : groups) {
        if (g.rows == 0 || g.cols == 0) continue;
        torch::Tensor ip = models::gemm::mm(lblk.narrow(0, 0, g.rows), rblk.narrow(0, g.col_begin, g.cols).t());
        out.narrow(0, 0, g.rows).narrow(1, g.col_begin, g.cols).add_(ip);  // accumulated in double
      }
    }
  return out;
}

}  // namespace circuitlab::analysis
