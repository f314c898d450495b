// Symmetric Gram-type products computed block-upper-triangularly: of the b×b column blocks of
// a symmetric C×C result only the b(b+1)/2 upper ones are multiplied ((b+1)/2b of the GEMM
// work), through LibTorch GEMMs (OpenBLAS) in the inputs' dtype. Not a general
// symmetric-matrix library: XᵀX, and packed inner products of symmetric products.
#pragma once
#include <torch/torch.h>

#include <utility>
#include <vector>

namespace circuitlab::analysis {

// Column ranges {start, length} splitting n columns into at most `blocks` nearly equal parts.
std::vector<std::pair<int64_t, int64_t>> column_blocks(int64_t n, int blocks);

// X [R, C] -> XᵀX [C, C] in X's dtype (upper blocks multiplied, lower ones mirrored).
torch::Tensor gram_tn(const torch::Tensor& X, int blocks = 2);

// A, B [n, r, C] with every AᵢᵀBᵢ symmetric (B = S·A with S symmetric, or B = A): the upper
// column blocks of each AᵢᵀBᵢ [C, C], one tensor [n, |a|·|b|] per block pair a ≤ b (row-major
// block, off-diagonal blocks times `offdiag_scale`). Each block is one bmm over contiguous
// column blocks. For symmetric X, Y packed with scales 2 and 1: Σ_blocks packed(X)·packed(Y)ᵀ
// = ⟨X, Y⟩ (Frobenius inner product) — see packed_inner.
using PackedSym = std::vector<torch::Tensor>;
PackedSym packed_sym_products(const torch::Tensor& A, const torch::Tensor& B, double offdiag_scale, int blocks = 4);

// Σ over block pairs of left[k].narrow(0, 0, rows) · right[k]ᵀ -> [rows, m] in float64.
torch::Tensor packed_inner(const PackedSym& left, int64_t rows, const PackedSym& right);

}  // namespace circuitlab::analysis
