// Symmetric Gram-type products computed block-upper-triangularly: of the b×b column blocks of
// a symmetric C×C result only the b(b+1)/2 upper ones are multiplied ((b+1)/2b of the GEMM
// work), in the inputs' dtype (float32 through oneDNN, else LibTorch). Not a general
// symmetric-matrix library: XᵀX, and inner products of symmetric products.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace circuitlab::analysis {

// Column ranges {start, length} splitting n columns into at most `blocks` nearly equal parts.
std::vector<std::pair<int64_t, int64_t>> column_blocks(int64_t n, int blocks);

// X [R, C] -> XᵀX [C, C] in X's dtype (upper blocks multiplied, lower ones mirrored).
torch::Tensor gram_tn(const torch::Tensor& X, int blocks = 2);

// Frobenius inner products of symmetric products without forming any of them whole:
//   out[i, j] = ⟨LAᵢᵀ·LBᵢ, RAⱼᵀ·RBⱼ⟩     LA, LB [nL, r, C], RA, RB [nR, r', C]
// where every LAᵢᵀ·LBᵢ and RAⱼᵀ·RBⱼ [C, C] is symmetric (LB = S·LA with S symmetric, or LB = LA).
// The C columns are cut into `blocks` parts; for each upper block pair (a ≤ b) the [|a|, |b|]
// blocks of all products are formed (one small GEMM per item, items over the threads, in the
// inputs' dtype) and their inner products taken by one GEMM per group, off-diagonal block
// pairs counted twice. A group {rows, col_begin, cols} asks for out[0:rows, col_begin:+cols];
// entries outside every group are 0. Result float64 [nL, nR].
struct InnerGroup {
  int64_t rows = 0, col_begin = 0, cols = 0;
};
torch::Tensor sym_product_inner(const torch::Tensor& LA, const torch::Tensor& LB, const torch::Tensor& RA,
                                const torch::Tensor& RB, const std::vector<InnerGroup>& groups, int blocks = 4);

}  // namespace circuitlab::analysis
