// Symmetric Gram-type products computed block-upper-triangularly: of the b×b column blocks of
// a symmetric C×C result only the b(b+1)/2 upper ones are multiplied ((b+1)/2b of the GEMM
// work), through LibTorch GEMMs (OpenBLAS) in the inputs' dtype. Measured on the 2-core box:
// b = 2 pays for itself on V×D×D Grams; for the batched Dh-inner-dimension products the strided
// slices cost more than they save, so those use b = 1 (one bmm, no packing copy). Not a
// general symmetric-matrix library: XᵀX, and packed inner products of symmetric products.
#pragma once
#include <torch/torch.h>

#include <utility>
#include <vector>

namespace circuitlab::analysis {

// Column ranges {start, length} splitting n columns into at most `blocks` nearly equal parts.
std::vector<std::pair<int64_t, int64_t>> column_blocks(int64_t n, int blocks);

// X [R, C] -> XᵀX [C, C] in X's dtype (upper blocks multiplied, lower ones mirrored).
torch::Tensor gram_tn(const torch::Tensor& X, int blocks = 2);

// A, B [n, r, C] with every AᵢᵀBᵢ symmetric (B = S·A with S symmetric, or B = A) ->
// packed [n, P]: the upper column blocks of AᵢᵀBᵢ, flattened, off-diagonal blocks times
// `offdiag_scale`, P = Σ_{a≤b} |a|·|b|. For symmetric X, Y packed with scales 2 and 1:
// packed(X)·packed(Y)ᵀ = ⟨X, Y⟩ (Frobenius inner product).
torch::Tensor packed_sym_products(const torch::Tensor& A, const torch::Tensor& B, double offdiag_scale,
                                  int blocks = 1);

}  // namespace circuitlab::analysis
