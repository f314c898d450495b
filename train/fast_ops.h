// The pieces both hand-written training paths share (fast_transformer.h):
// causal attention forward/backward on strided per-(sequence, head) blocks, the chunked
// unembed + softmax + cross-entropy + gradient that never holds the [N, V] logits, LayerNorm
// forward/backward fused with the residual add, and the embedding backward. CPU, float32/64,
// preallocated buffers passed in; every formula is what autograd computes for
// HookedTransformer::forward. Not a model and not an optimizer. N = b·T rows, row vectors (x · W).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace circuitlab::train::fast_ops {

// C = alpha·A·B + beta·C into C's memory, 2-D or batched (models/gemm.h: oneDNN sgemm for
// float32, ATen otherwise). beta = 0 ignores C's previous contents (NaN included).
void gemm(const torch::Tensor& A, const torch::Tensor& B, torch::Tensor C, double alpha = 1.0, double beta = 0.0);

// Shape of one attention call: b sequences of T positions, H heads of Dh.
struct AttnShape {
  int64_t b, T, H, Dh;
  double scale() const;  // 1/sqrt(Dh)
};

// qkv [N, 3·H·Dh], columns (q|k|v, head, d_head) -> pattern [b·H, T, T] (causal softmax of
// scale·q·kᵀ; scores [b·H, T, T] is scratch) and z [N, H·Dh] (= pattern · v per head).
void attention_forward(const AttnShape& s, const torch::Tensor& qkv, torch::Tensor& scores, torch::Tensor& pattern,
                       torch::Tensor& z);

// dz [N, H·Dh] -> dqkv [N, 3·H·Dh] (same column layout as qkv). dP, dS [b·H, T, T] scratch.
void attention_backward(const AttnShape& s, const torch::Tensor& qkv, const torch::Tensor& pattern,
                        const torch::Tensor& dz, torch::Tensor& dP, torch::Tensor& dS, torch::Tensor& dqkv);

// Mean next-token cross-entropy of logits = xf · W_U (+ b_U) over N rows, chunk by chunk
// through `logits` [chunk, V_out] (its row count sets the chunk), and its gradient scaled by g
// per row (g = grad_scale / N):
//   dxf [N, D] = dlogits · W_Uᵀ (overwritten),
//   gW_U [D, V_out] += xfᵀ · dlogits    (when defined; untied models)
//   gW_Et [V_out, D] += dlogitsᵀ · xf   (when defined; tied models, W_U = W_Eᵀ)
//   gb_U [V_out] += column sums of dlogits (when b_U is defined).
// W_U may be a transposed view (W_E.t()). Returns the summed (not mean) loss.
struct UnembedGrads {
  torch::Tensor gW_U, gW_Et, gb_U;
};
double unembed_cross_entropy(const torch::Tensor& xf, const torch::Tensor& W_U, const torch::Tensor& b_U,
                             const int64_t* targets, double g, torch::Tensor& logits, UnembedGrads& grads,
                             torch::Tensor& dxf);

// A chunk of logits rows sized to one L2 block per thread (each core has its own L2).
int64_t logits_chunk_rows(int64_t N, int64_t V_out, int64_t element_size);

// LayerNorm over the last dim of x [N, D] (biased variance, eps inside the sqrt, as
// torch layer_norm): y = (x − mean)·rstd·w + b; mean and rstd [N] kept for the backward.
void layer_norm_forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps,
                        torch::Tensor& y, torch::Tensor& mean, torch::Tensor& rstd);

// dx += ∂/∂x of LayerNorm given dy [N, D] (fused with the residual stream's gradient that
// passes the block unchanged); gw = Σ_rows dy·x̂, gb = Σ_rows dy (overwritten; rows summed in
// order, threads split the columns, so the sums do not depend on the thread count).
void layer_norm_backward(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean,
                         const torch::Tensor& rstd, const torch::Tensor& w, torch::Tensor& dx, torch::Tensor& gw,
                         torch::Tensor& gb);

// gW_E[x[i]] += d[i] for the N rows of d [N, D], in row order (deterministic).
void embed_backward(torch::Tensor& gW_E, const torch::Tensor& d, const int64_t* x);

// Ids in range: fails naming the first id outside [0, V) (inputs) or [0, V_out) (targets).
void check_ids(const int64_t* x, const int64_t* y, int64_t N, int64_t V, int64_t V_out);

// p.grad() += g (defining it as zeros first where undefined).
void accumulate_grad(const torch::Tensor& p, const torch::Tensor& g);

}  // namespace circuitlab::train::fast_ops
