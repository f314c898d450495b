// Dense float32 GEMMs for the model's inference path: y = x · w (+ b) through oneDNN's sgemm
// (JIT AVX-512/AVX2 kernels) when the operands allow it, else through LibTorch (OpenBLAS).
// Autograd is never bypassed: when a gradient would be needed, the LibTorch op runs. Not a
// general BLAS wrapper: only 2-D CPU float tensors with a unit stride on one side take the fast
// path. CIRCUITLAB_GEMM=torch turns it off (for comparisons).
#pragma once

namespace at {
class Tensor;
}

namespace circuitlab::models::gemm {

// x [M, K] · w [K, N] (+ b [N], may be undefined) -> [M, N].
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// a [M, K] · b [K, N] -> [M, N].
at::Tensor mm(const at::Tensor& a, const at::Tensor& b);

// Batched a [n, M, K] · b [n, K, N] -> [n, M, N]: one sgemm per batch item, items spread over
// the intra-op threads (each sgemm single-threaded inside). Each item row-major or transposed.
at::Tensor bmm(const at::Tensor& a, const at::Tensor& b);

// Batched c[i] = alpha · a[i] · b[i] + beta · c[i], in place, for many small products: items
// spread over the intra-op threads, each sgemm single-threaded inside. One or more batch
// dimensions (a [..., M, K], b [..., K, N], c [..., M, N], same batch shape, any batch strides:
// e.g. per-(sequence, head) blocks of a [B, T, H, Dh] activation). Items' layouts as in bmm; c's
// items row-major with a unit inner stride.
void bmm_into(at::Tensor& c, const at::Tensor& a, const at::Tensor& b, double beta = 0.0, double alpha = 1.0);

// c = alpha · a · b + beta · c, in place: a [M, K], b [K, N], c [M, N] with a unit inner stride
// (a row block of a bigger buffer is fine): one multi-threaded sgemm. Batches of them (3-D or
// more) go to bmm_into. beta 0 overwrites c (NaN included), beta 1 accumulates.
void mm_into(at::Tensor& c, const at::Tensor& a, const at::Tensor& b, double beta = 0.0, double alpha = 1.0);

// Per-head outputs of attention: z [B, T, H, Dh] · W_O [H, Dh, D] -> [B, T, H, D]
// (result[b, t, h] = z[b, t, h] · W_O[h], TransformerLens's hook_result).
at::Tensor head_results(const at::Tensor& z, const at::Tensor& W_O);

// "dnnl" or "torch": what linear/mm use for eligible operands in this process.
const char* backend();

}  // namespace circuitlab::models::gemm
