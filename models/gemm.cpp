// oneDNN sgemm behind the model's dense products (see gemm.h). Row-major calls: dnnl_sgemm
// takes C = alpha·op(A)·op(B) + beta·C with row-major leading dimensions, so a transposed view
// (e.g. W_E.t() for a tied unembedding) is passed as 'T' on the same memory, never copied.
#include "models/gemm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <torch/torch.h>

#ifdef CIRCUITLAB_HAVE_DNNL
#include <dnnl.h>
#endif

namespace circuitlab::models::gemm {

namespace {

bool dnnl_enabled() {
#ifdef CIRCUITLAB_HAVE_DNNL
  static const bool on = [] {
    const char* e = std::getenv("CIRCUITLAB_GEMM");
    return e == nullptr || std::strcmp(e, "torch") != 0;
  }();
  return on;
#else
  return false;
#endif
}

// A 2-D operand as a row-major matrix: 'N' with leading dimension stride(0), or 'T' (its
// transpose is row-major) with leading dimension stride(1).
struct Operand {
  char trans = 'N';
  int64_t ld = 0;
};

bool as_operand(const at::Tensor& t, Operand& op) {
  const int64_t r = t.size(0), c = t.size(1);
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(c, 1)) {
    op = {'N', t.stride(0)};
    return true;
  }
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(r, 1)) {
    op = {'T', t.stride(1)};
    return true;
  }
  return false;
}

bool eligible(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && !t.is_sparse() &&
         !(at::GradMode::is_enabled() && t.requires_grad());
}

}  // namespace

const char* backend() { return dnnl_enabled() ? "dnnl" : "torch"; }

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(0), "gemm::linear: expected x [M, K] · w [K, N], got ",
              x.sizes(), " and ", w.sizes());
#ifdef CIRCUITLAB_HAVE_DNNL
  const int64_t M = x.size(0), K = x.size(1), N = w.size(1);
  Operand A, B;
  if (dnnl_enabled() && M > 0 && N > 0 && K > 0 && eligible(x) && eligible(w) && (!b.defined() || eligible(b)) &&
      (!b.defined() || (b.dim() == 1 && b.size(0) == N)) && as_operand(x, A) && as_operand(w, B)) {
    // A copy of b, never b itself: for M = 1 `expand(...).contiguous()` is b's own storage, and
    // sgemm's beta = 1 would write x·w + b into the model's bias.
    at::Tensor out = b.defined() ? b.expand({M, N}).clone(at::MemoryFormat::Contiguous)
                                 : at::empty({M, N}, x.options());  // [M, N]
    const dnnl_status_t st =
        dnnl_sgemm(A.trans, B.trans, M, N, K, 1.0f, x.data_ptr<float>(), A.ld, w.data_ptr<float>(), B.ld,
                   b.defined() ? 1.0f : 0.0f, out.data_ptr<float>(), N);
    if (st == dnnl_success) return out;
  }
#endif
  return b.defined() ? torch::addmm(b, x, w) : torch::mm(x, w);
}

at::Tensor mm(const at::Tensor& a, const at::Tensor& b) { return linear(a, b, at::Tensor()); }

at::Tensor bmm(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "gemm::bmm: expected a [n, M, K] · b [n, K, N], got ", a.sizes(), " and ", b.sizes());
  at::Tensor out = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());  // [n, M, N]
  bmm_into(out, a, b);
  return out;
}

void bmm_into(at::Tensor& c, const at::Tensor& a, const at::Tensor& b, double beta, double alpha) {
  const int64_t d = c.dim();
  bool shapes = d >= 3 && a.dim() == d && b.dim() == d && a.size(-1) == b.size(-2) && c.size(-2) == a.size(-2) &&
                c.size(-1) == b.size(-1);
  for (int64_t i = 0; shapes && i < d - 2; ++i) shapes = a.size(i) == c.size(i) && b.size(i) == c.size(i);
  TORCH_CHECK(shapes, "gemm::bmm_into: expected a [..., M, K] · b [..., K, N] into c [..., M, N] (same batch shape), got ",
              a.sizes(), ", ", b.sizes(), ", ", c.sizes());
#ifdef CIRCUITLAB_HAVE_DNNL
  const int64_t M = c.size(-2), K = a.size(-1), N = c.size(-1);
  int64_t n = 1;
  for (int64_t i = 0; i < d - 2; ++i) n *= c.size(i);
  auto first = [](at::Tensor t) {  // the first item, [rows, cols]
    while (t.dim() > 2) t = t.select(0, 0);
    return t;
  };
  Operand A, B;
  if (dnnl_enabled() && n > 0 && M > 0 && N > 0 && K > 0 && eligible(a) && eligible(b) && eligible(c) &&
      c.stride(-1) == 1 && c.stride(-2) >= N && as_operand(first(a), A) && as_operand(first(b), B)) {
    // Element offset of item i in t: i decomposed over the batch sizes, times t's strides.
    auto offset = [&](const at::Tensor& t, int64_t i) {
      int64_t off = 0;
      for (int64_t k = d - 3; k >= 0; --k) {
        off += (i % c.size(k)) * t.stride(k);
        i /= c.size(k);
      }
      return off;
    };
    const float* ap = a.data_ptr<float>();
    const float* bp = b.data_ptr<float>();
    float* cp = c.data_ptr<float>();
    const int64_t ldc = c.stride(-2);
    std::atomic<bool> ok{true};
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        if (dnnl_sgemm(A.trans, B.trans, M, N, K, static_cast<float>(alpha), ap + offset(a, i), A.ld, bp + offset(b, i),
                       B.ld, static_cast<float>(beta), cp + offset(c, i), ldc) != dnnl_success)
          ok = false;
    });
    if (ok) return;
  }
#endif
  at::Tensor prod = at::matmul(a, b);  // c may be a strided view: computed aside, then written
  if (beta == 0)
    c.copy_(alpha == 1.0 ? prod : prod.mul_(alpha));
  else
    c.mul_(beta).add_(prod, alpha);
}

void mm_into(at::Tensor& c, const at::Tensor& a, const at::Tensor& b, double beta, double alpha) {
  if (c.dim() >= 3) return bmm_into(c, a, b, beta, alpha);
  TORCH_CHECK(c.dim() == 2 && a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) && c.size(0) == a.size(0) &&
                  c.size(1) == b.size(1),
              "gemm::mm_into: expected a [M, K] · b [K, N] into c [M, N] (or batches of them), got ", a.sizes(), ", ",
              b.sizes(), ", ", c.sizes());
#ifdef CIRCUITLAB_HAVE_DNNL
  const int64_t M = c.size(0), K = a.size(1), N = c.size(1);
  Operand A, B;
  if (dnnl_enabled() && M > 0 && N > 0 && K > 0 && eligible(a) && eligible(b) && eligible(c) && c.stride(1) == 1 &&
      c.stride(0) >= N && as_operand(a, A) && as_operand(b, B) &&
      dnnl_sgemm(A.trans, B.trans, M, N, K, static_cast<float>(alpha), a.data_ptr<float>(), A.ld, b.data_ptr<float>(),
                 B.ld, static_cast<float>(beta), c.data_ptr<float>(), c.stride(0)) == dnnl_success)
    return;  // one multi-threaded sgemm
#endif
  if (beta == 0) {
    at::mm_out(c, a, b);
    if (alpha != 1.0) c.mul_(alpha);
  } else {
    c.addmm_(a, b, beta, alpha);
  }
}

at::Tensor head_results(const at::Tensor& z, const at::Tensor& W_O) {
  TORCH_CHECK(z.dim() == 4 && W_O.dim() == 3 && z.size(2) == W_O.size(0) && z.size(3) == W_O.size(1),
              "gemm::head_results: expected z [B, T, H, Dh] and W_O [H, Dh, D], got ", z.sizes(), " and ", W_O.sizes());
  const int64_t B = z.size(0), T = z.size(1), H = z.size(2), Dh = z.size(3), D = W_O.size(2);
#ifdef CIRCUITLAB_HAVE_DNNL
  // One row-major GEMM per (b, h), written straight into its strided slice of the output.
  if (dnnl_enabled() && B * T * H * Dh * D > 0 && eligible(z) && eligible(W_O) && z.stride(3) == 1 &&
      z.stride(1) >= Dh && W_O.stride(2) == 1 && W_O.stride(1) >= D) {
    at::Tensor out = at::empty({B, T, H, D}, z.options());  // [B, T, H, D]
    const float* zp = z.data_ptr<float>();
    const float* wp = W_O.data_ptr<float>();
    float* op = out.data_ptr<float>();
    bool ok = true;
    for (int64_t b = 0; b < B && ok; ++b)
      for (int64_t h = 0; h < H && ok; ++h)
        ok = dnnl_sgemm('N', 'N', T, D, Dh, 1.0f, zp + b * z.stride(0) + h * z.stride(2), z.stride(1),
                        wp + h * W_O.stride(0), W_O.stride(1), 0.0f, op + (b * T * H + h) * D, H * D) == dnnl_success;
    if (ok) return out;
  }
#endif
  return torch::bmm(z.permute({2, 0, 1, 3}).reshape({H, B * T, Dh}), W_O)  // [H, B·T, D]
      .view({H, B, T, D})
      .permute({1, 2, 0, 3});  // [B, T, H, D]
}

}  // namespace circuitlab::models::gemm
