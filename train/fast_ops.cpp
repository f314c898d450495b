// See fast_ops.h. Per-head tensors are strided views of the flat [N, 3·H·Dh] / [N, H·Dh]
// activations (no permute copies); the batched products go through models/gemm.h, items over
// the threads. Elementwise loops split rows (or, for sums over rows, columns) over the threads.
#include "train/fast_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/gemm.h"

namespace circuitlab::train::fast_ops {

using torch::Tensor;

namespace {
// Rows of the logits chunk per thread: 128 rows × V 2048 × 4 bytes = 1 MiB, resident in a 2 MiB L2.
constexpr int64_t kChunkBytes = 1 << 20;

// Causal mask in place: -inf above the diagonal of every [T, T] item of scores [n, T, T] (row
// stores only, items over the threads; a broadcast masked_fill_ cost more than the GEMM's output).
void mask_future(Tensor& scores) {
  const int64_t n = scores.size(0), T = scores.size(1);
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "fast_mask_future", [&] {
    scalar_t* p = scores.data_ptr<scalar_t>();
    const scalar_t ninf = -std::numeric_limits<scalar_t>::infinity();
    at::parallel_for(0, n, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t t = 0; t + 1 < T; ++t) std::fill(p + (i * T + t) * T + t + 1, p + (i * T + t + 1) * T, ninf);
    });
  });
}

// Per-(sequence, head) blocks [b, H, T, Dh] of part p (0 q, 1 k, 2 v) of a [N, 3·HD] activation
// whose columns are (q|k|v, head, d_head): strided views, no copies.
Tensor head_blocks(const Tensor& flat, int64_t p, const AttnShape& s) {
  return flat.view({s.b, s.T, 3, s.H, s.Dh}).select(2, p).permute({0, 2, 1, 3});
}
}  // namespace

void gemm(const Tensor& A, const Tensor& B, Tensor C, double alpha, double beta) {
  models::gemm::mm_into(C, A, B, beta, alpha);
}

double AttnShape::scale() const { return 1.0 / std::sqrt(static_cast<double>(Dh)); }

void attention_forward(const AttnShape& s, const Tensor& qkv, Tensor& scores, Tensor& pattern, Tensor& z) {
  const int64_t b = s.b, T = s.T, H = s.H, Dh = s.Dh;
  const Tensor q = head_blocks(qkv, 0, s), k = head_blocks(qkv, 1, s), v = head_blocks(qkv, 2, s);  // [b, H, T, Dh]
  gemm(q, k.transpose(-1, -2), scores.view({b, H, T, T}), s.scale());  // s·q·kᵀ   [bH, T, T]
  mask_future(scores);
  at::_softmax_out(pattern, scores, -1, false);
  gemm(pattern.view({b, H, T, T}), v, z.view({b, T, H, Dh}).permute({0, 2, 1, 3}));  // z = P·v
}

void attention_backward(const AttnShape& s, const Tensor& qkv, const Tensor& pattern, const Tensor& dz_flat,
                        Tensor& dP, Tensor& dS, Tensor& dqkv) {
  const int64_t b = s.b, T = s.T, H = s.H, Dh = s.Dh;
  const Tensor dz = dz_flat.view({b, T, H, Dh}).permute({0, 2, 1, 3});  // [b, H, T, Dh]
  const Tensor q = head_blocks(qkv, 0, s), k = head_blocks(qkv, 1, s), v = head_blocks(qkv, 2, s);
  const Tensor P = pattern.view({b, H, T, T});
  const Tensor dS4 = dS.view({b, H, T, T});
  gemm(dz, v.transpose(-1, -2), dP.view({b, H, T, T}));  // dP = dz · vᵀ
  gemm(P.transpose(-1, -2), dz, head_blocks(dqkv, 2, s));  // dv = Pᵀ · dz
  at::_softmax_backward_data_out(dS, dP, pattern, -1, P.scalar_type());  // dS (masked entries: P = 0)
  gemm(dS4, k, head_blocks(dqkv, 0, s), s.scale());                        // dq = s·dS·k
  gemm(dS4.transpose(-1, -2), q, head_blocks(dqkv, 1, s), s.scale());      // dk = s·dSᵀ·q
}

int64_t logits_chunk_rows(int64_t N, int64_t V_out, int64_t element_size) {
  const int64_t per_thread = kChunkBytes / (V_out * element_size);
  return std::max<int64_t>(16, std::min<int64_t>(N, per_thread * std::max(1, at::get_num_threads())));
}

double unembed_cross_entropy(const Tensor& xf, const Tensor& W_U, const Tensor& b_U, const int64_t* yp, double g,
                             Tensor& logits, UnembedGrads& grads, Tensor& dxf) {
  const int64_t N = xf.size(0), V_out = W_U.size(1);
  const bool bias = b_U.defined();
  double loss_sum = 0;
  const int64_t chunk = logits.size(0);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t n = std::min(chunk, N - r0);
    Tensor lg = logits.slice(0, 0, n);  // [n, V_out]
    const Tensor xc = xf.slice(0, r0, r0 + n);
    if (bias) {
      // Rows start as b_U (row memcpy: a broadcast copy_ through TensorIterator cost ~3x more).
      const size_t row_bytes = static_cast<size_t>(V_out) * lg.element_size();
      char* dst = static_cast<char*>(lg.data_ptr());
      const char* src = static_cast<const char*>(b_U.data_ptr());
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * row_bytes, src, row_bytes);
      gemm(xc, W_U, lg, 1.0, 1.0);
    } else {
      gemm(xc, W_U, lg);
    }
    // Vectorised softmax via ATen; loss from log p_y with a log-sum-exp fallback on underflow.
    std::vector<double> ty(n);
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_t", [&] {
      const scalar_t* p = lg.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) ty[i] = static_cast<double>(p[i * V_out + yp[r0 + i]]);
    });
    at::_softmax_out(lg, lg, 1, false);
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_g", [&] {
      scalar_t* p = lg.data_ptr<scalar_t>();
      bool underflow = false;
      for (int64_t i = 0; i < n; ++i) {
        const double py = static_cast<double>(p[i * V_out + yp[r0 + i]]);
        if (py > 1e-30) loss_sum -= std::log(py);
        else underflow = true;
      }
      if (underflow) {  // recompute those rows' loss from the logits: lse - logit_y
        Tensor lgc = bias ? at::addmm(b_U, xc, W_U) : at::mm(xc, W_U);
        Tensor lse_t = at::logsumexp(lgc.to(torch::kDouble), {1});
        const double* lp = lse_t.data_ptr<double>();
        for (int64_t i = 0; i < n; ++i)
          if (!(static_cast<double>(p[i * V_out + yp[r0 + i]]) > 1e-30)) loss_sum += lp[i] - ty[i];
      }
      for (int64_t i = 0; i < n; ++i) p[i * V_out + yp[r0 + i]] -= scalar_t(1);
    });
    // dlogits = g·(softmax - onehot) in place, and db_U += column sums, in one pass.
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_scale", [&] {
      scalar_t* p = lg.data_ptr<scalar_t>();
      scalar_t* gb = bias ? grads.gb_U.data_ptr<scalar_t>() : nullptr;
      const scalar_t gs = static_cast<scalar_t>(g);
      // Threads split the columns, so every b_U entry sums its rows in the same order
      // whatever the thread count.
      at::parallel_for(0, V_out, 256, [&](int64_t j0, int64_t j1) {
        for (int64_t i = 0; i < n; ++i) {
          scalar_t* row = p + i * V_out;
          for (int64_t j = j0; j < j1; ++j) row[j] *= gs;
          if (gb)
            for (int64_t j = j0; j < j1; ++j) gb[j] += row[j];
        }
      });
    });
    if (grads.gW_U.defined()) gemm(xc.t(), lg, grads.gW_U, 1.0, 1.0);    // gW_U += xcᵀ · dlogits
    if (grads.gW_Et.defined()) gemm(lg.t(), xc, grads.gW_Et, 1.0, 1.0);  // gW_E += dlogitsᵀ · xc
    gemm(lg, W_U.t(), dxf.slice(0, r0, r0 + n));                          // d xf
  }
  return loss_sum;
}

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd) {
  const int64_t N = x.size(0), D = x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fast_ln_fwd", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    const scalar_t* bp = b.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t* mp = mean.data_ptr<scalar_t>();
    scalar_t* rp = rstd.data_ptr<scalar_t>();
    at::parallel_for(0, N, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t* xr = xp + i * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += xr[d];
        const double mu = s / static_cast<double>(D);
        double v = 0;
        for (int64_t d = 0; d < D; ++d) v += (xr[d] - mu) * (xr[d] - mu);
        const double r = 1.0 / std::sqrt(v / static_cast<double>(D) + eps);
        mp[i] = static_cast<scalar_t>(mu);
        rp[i] = static_cast<scalar_t>(r);
        const scalar_t m = static_cast<scalar_t>(mu), rs = static_cast<scalar_t>(r);
        scalar_t* yr = yp + i * D;
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - m) * rs * wp[d] + bp[d];
      }
    });
  });
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                         Tensor& dx, Tensor& gw, Tensor& gb) {
  const int64_t N = x.size(0), D = x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fast_ln_bwd", [&] {
    const scalar_t* dyp = dy.data_ptr<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* mp = mean.data_ptr<scalar_t>();
    const scalar_t* rp = rstd.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t* dxp = dx.data_ptr<scalar_t>();
    // dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·w: rows over the threads.
    at::parallel_for(0, N, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t* dyr = dyp + i * D;
        const scalar_t* xr = xp + i * D;
        const scalar_t m = mp[i], rs = rp[i];
        double s1 = 0, s2 = 0;
        for (int64_t d = 0; d < D; ++d) {
          const double dh = static_cast<double>(dyr[d]) * wp[d];
          s1 += dh;
          s2 += dh * static_cast<double>((xr[d] - m) * rs);
        }
        const scalar_t m1 = static_cast<scalar_t>(s1 / static_cast<double>(D));
        const scalar_t m2 = static_cast<scalar_t>(s2 / static_cast<double>(D));
        scalar_t* dxr = dxp + i * D;
        for (int64_t d = 0; d < D; ++d) {
          const scalar_t xh = (xr[d] - m) * rs;
          dxr[d] += rs * (dyr[d] * wp[d] - m1 - xh * m2);
        }
      }
    });
    // gw, gb: column sums over rows in row order, columns over the threads.
    scalar_t* gwp = gw.data_ptr<scalar_t>();
    scalar_t* gbp = gb.data_ptr<scalar_t>();
    at::parallel_for(0, D, 32, [&](int64_t j0, int64_t j1) {
      std::vector<double> aw(j1 - j0, 0.0), ab(j1 - j0, 0.0);
      for (int64_t i = 0; i < N; ++i) {
        const scalar_t* dyr = dyp + i * D;
        const scalar_t* xr = xp + i * D;
        const scalar_t m = mp[i], rs = rp[i];
        for (int64_t j = j0; j < j1; ++j) {
          aw[j - j0] += static_cast<double>(dyr[j]) * static_cast<double>((xr[j] - m) * rs);
          ab[j - j0] += static_cast<double>(dyr[j]);
        }
      }
      for (int64_t j = j0; j < j1; ++j) {
        gwp[j] = static_cast<scalar_t>(aw[j - j0]);
        gbp[j] = static_cast<scalar_t>(ab[j - j0]);
      }
    });
  });
}

void embed_backward(Tensor& gW_E, const Tensor& d, const int64_t* xp) {
  const int64_t N = d.size(0), D = d.size(1);
  AT_DISPATCH_FLOATING_TYPES(gW_E.scalar_type(), "fast_embed_bwd", [&] {
    scalar_t* gw = gW_E.data_ptr<scalar_t>();
    const scalar_t* dr = d.data_ptr<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      scalar_t* dst = gw + xp[i] * D;
      const scalar_t* src = dr + i * D;
      for (int64_t k = 0; k < D; ++k) dst[k] += src[k];
    }
  });
}

void check_ids(const int64_t* xp, const int64_t* yp, int64_t N, int64_t V, int64_t V_out) {
  for (int64_t i = 0; i < N; ++i) {
    if (xp[i] < 0 || xp[i] >= V) fail("token id " + std::to_string(xp[i]) + " is out of range for d_vocab " + std::to_string(V));
    if (yp[i] < 0 || yp[i] >= V_out)
      fail("target id " + std::to_string(yp[i]) + " is out of range for the unembedding's " + std::to_string(V_out) +
           " outputs");
  }
}

void accumulate_grad(const Tensor& p, const Tensor& g) {
  Tensor& gr = const_cast<Tensor&>(p).mutable_grad();
  if (!gr.defined()) gr = torch::zeros_like(p);
  gr.add_(g);
}

}  // namespace circuitlab::train::fast_ops
