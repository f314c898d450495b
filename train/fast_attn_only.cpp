// See fast_attn_only.h. Row-vector convention as the model (x · W). N = b·T rows; weights are
// used in GEMM-friendly flat layouts: W_qkv [D, 3·H·Dh] with columns (q|k|v, head, d_head),
// W_O [H·Dh, D]; per-head tensors live in [3, b, H, T, Dh] buffers for batched GEMMs.
// Every gradient formula mirrors what autograd computes for HookedTransformer::forward.
#include "train/fast_attn_only.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "models/gemm.h"


namespace circuitlab::train {

using torch::Tensor;

namespace {
// Rows of the logits chunk per thread: 128 rows × V 2048 × 4 bytes = 1 MiB, resident in a 2 MiB L2.
constexpr int64_t kChunkBytes = 1 << 20;

// C = alpha·A·B + beta·C for matrices (2-D) or batches of them (the per-(sequence, head)
// attention products, items over the threads), written into C's memory: models/gemm.h
// (oneDNN sgemm for float32, ATen otherwise; CIRCUITLAB_GEMM=torch turns oneDNN off).
// beta = 0 ignores C's previous contents (NaN included).
void gemm(const Tensor& A, const Tensor& B, Tensor C, double alpha = 1.0, double beta = 0.0) {
  models::gemm::mm_into(C, A, B, beta, alpha);
}

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
Tensor head_blocks(const Tensor& flat, int64_t p, int64_t b, int64_t T, int64_t H, int64_t Dh) {
  return flat.view({b, T, 3, H, Dh}).select(2, p).permute({0, 2, 1, 3});
}
}  // namespace

struct FastAttnOnly::Impl {
  models::HookedTransformer model{nullptr};
  int64_t L, D, H, Dh, HD, V, V_out, n_ctx;
  bool shortformer, bias;
  Tensor W_E, W_pos, W_U, b_U;                 // [V, D], [n_ctx, D], [D, V_out], [V_out]
  std::vector<Tensor> W_Q, W_K, W_V, W_O;      // [H, D, Dh] ×3, [H, Dh, D]
  std::vector<Tensor> b_Q, b_K, b_V, b_O;      // [H, Dh] ×3, [D]
  std::vector<Tensor> params;                  // every trainable parameter

  // Buffers (reallocated when b or T change).
  int64_t b = -1, T = -1;
  std::vector<Tensor> w_qkv;     // per layer [D, 3·HD]
  std::vector<Tensor> resid;     // L+1 × [N, D]: input of layer l; resid[L] feeds the unembed
  std::vector<Tensor> qk_in;     // per layer [N, D] (shortformer: resid + pos)
  std::vector<Tensor> qkv;       // per layer [N, 3·HD], columns (q|k|v, head, d_head)
  std::vector<Tensor> pattern;   // per layer [b·H, T, T]
  std::vector<Tensor> z;         // per layer [N, HD]
  Tensor scores;                 // [b·H, T, T]
  Tensor logits;                 // [chunk, V_out]
  Tensor dresid, dtmp;           // [N, D]
  Tensor dP, dS;                 // [b·H, T, T] ×2
  Tensor dz_flat, dqkv_flat;     // [N, HD], [N, 3·HD]
  // Gradient buffers in flat layouts, added into .grad() at the end.
  Tensor gW_E, gW_pos, gW_U, gb_U;
  std::vector<Tensor> gW_qkv, gb_qkv, gW_O, gb_O;
  Tensor dpos_rows;              // [N, D] accumulated d(pos) per row (shortformer)

  void alloc(int64_t b_, int64_t T_) {
    b = b_;
    T = T_;
    const int64_t N = b * T;
    auto o = W_E.options().requires_grad(false);
    resid.assign(L + 1, Tensor());
    for (auto& r : resid) r = torch::empty({N, D}, o);
    qk_in.assign(L, Tensor());
    qkv.assign(L, Tensor());
    pattern.assign(L, Tensor());
    z.assign(L, Tensor());
    for (int64_t l = 0; l < L; ++l) {
      if (shortformer) qk_in[l] = torch::empty({N, D}, o);
      qkv[l] = torch::empty({N, 3 * HD}, o);
      pattern[l] = torch::empty({b * H, T, T}, o);
      z[l] = torch::empty({N, HD}, o);
    }
    scores = torch::empty({b * H, T, T}, o);
    // One L2-sized block of rows per thread (each core has its own L2).
    const int64_t per_thread = kChunkBytes / (V_out * W_E.element_size());
    const int64_t chunk = std::max<int64_t>(16, std::min<int64_t>(N, per_thread * std::max(1, at::get_num_threads())));
    logits = torch::empty({chunk, V_out}, o);
    dresid = torch::empty({N, D}, o);
    dtmp = torch::empty({N, D}, o);
    dpos_rows = torch::empty({N, D}, o);
    dP = torch::empty({b * H, T, T}, o);
    dS = torch::empty({b * H, T, T}, o);
    dz_flat = torch::empty({N, HD}, o);
    dqkv_flat = torch::empty({N, 3 * HD}, o);
  }
};

bool FastAttnOnly::supports(const models::HookedTransformer& model, std::string* why) {
  const auto& c = model->cfg();
  auto no = [&](const char* w) {
    if (why) *why = w;
    return false;
  };
  if (!c.attn_only) return no("model has MLP blocks");
  if (c.has_ln() || (!c.normalization_type.empty() && c.normalization_type != "none"))
    return no("model has normalization layers");
  if (c.tied_unembed) return no("unembedding is tied to the embedding");
  if (c.positional_embedding_type != "standard" && c.positional_embedding_type != "shortformer")
    return no("unsupported positional embedding type");
  const Tensor w = model->W_E();
  if (!w.device().is_cpu()) return no("model is not on the CPU");
  if (w.scalar_type() != torch::kFloat && w.scalar_type() != torch::kDouble) return no("dtype is not float32/float64");
  for (const auto& p : model->parameters()) {
    if (!p.requires_grad()) return no("a parameter is frozen (requires_grad false)");
    if (!p.is_contiguous()) return no("a parameter is not contiguous");
  }
  return true;
}

FastAttnOnly::FastAttnOnly(models::HookedTransformer model) : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!supports(model, &why)) fail("fast attention-only training path: " + why);
  auto& I = *impl_;
  I.model = model;
  const auto& c = model->cfg();
  I.L = c.n_layers;
  I.D = c.d_model;
  I.H = c.n_heads;
  I.Dh = c.d_head;
  I.HD = I.H * I.Dh;
  I.V = c.d_vocab;
  I.V_out = c.vocab_out();
  I.n_ctx = c.n_ctx;
  I.shortformer = c.shortformer();
  I.bias = c.use_bias;
  auto sd = model->state_dict();
  auto get = [&](const std::string& n) -> Tensor {
    auto it = sd.find(n);
    TORCH_CHECK(it != sd.end(), "fast attention-only path: the model has no parameter '", n, "'");
    return it->second;
  };
  I.W_E = get("embed.W_E");
  I.W_pos = get("pos_embed.W_pos");
  I.W_U = get("unembed.W_U");
  if (I.bias) I.b_U = get("unembed.b_U");
  for (int64_t l = 0; l < I.L; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".attn.";
    I.W_Q.push_back(get(p + "W_Q"));
    I.W_K.push_back(get(p + "W_K"));
    I.W_V.push_back(get(p + "W_V"));
    I.W_O.push_back(get(p + "W_O"));
    if (I.bias) {
      I.b_Q.push_back(get(p + "b_Q"));
      I.b_K.push_back(get(p + "b_K"));
      I.b_V.push_back(get(p + "b_V"));
      I.b_O.push_back(get(p + "b_O"));
    }
  }
  size_t n_covered = 3 + (I.bias ? 1 : 0) + I.W_Q.size() * 4 + I.b_Q.size() * 4;
  TORCH_CHECK(n_covered == model->parameters().size(), "fast attention-only path: the model has ",
              model->parameters().size(), " parameters, the path covers ", n_covered);
  for (const auto& p : model->parameters()) I.params.push_back(p);

  auto o = I.W_E.options().requires_grad(false);
  for (int64_t l = 0; l < I.L; ++l) {
    I.w_qkv.push_back(torch::empty({I.D, 3 * I.HD}, o));
    I.gW_qkv.push_back(torch::empty({I.D, 3 * I.HD}, o));
    I.gW_O.push_back(torch::empty({I.HD, I.D}, o));
    if (I.bias) {
      I.gb_qkv.push_back(torch::empty({3 * I.HD}, o));
      I.gb_O.push_back(torch::empty({I.D}, o));
    }
  }
  I.gW_E = torch::empty({I.V, I.D}, o);
  I.gW_pos = torch::empty({I.n_ctx, I.D}, o);
  I.gW_U = torch::empty({I.D, I.V_out}, o);
  if (I.bias) I.gb_U = torch::empty({I.V_out}, o);
}

FastAttnOnly::~FastAttnOnly() = default;

double FastAttnOnly::forward_backward(const Tensor& x_in, const Tensor& y_in, double grad_scale) {
  auto& I = *impl_;
  TORCH_CHECK(x_in.dim() == 2 && y_in.sizes() == x_in.sizes(), "fast attention-only path: tokens and targets must both be [b, T], got ",
              x_in.sizes(), " and ", y_in.sizes());
  const int64_t b = x_in.size(0), T = x_in.size(1), N = b * T;
  TORCH_CHECK(T >= 1 && T <= I.n_ctx && b >= 1, "fast attention-only path: need 1 <= T <= n_ctx (", I.n_ctx, "), got [", b, ", ", T, "]");
  const Tensor x = x_in.to(torch::kLong).contiguous(), y = y_in.to(torch::kLong).contiguous();
  const int64_t* xp = x.data_ptr<int64_t>();
  const int64_t* yp = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    if (xp[i] < 0 || xp[i] >= I.V) fail("token id " + std::to_string(xp[i]) + " is out of range for d_vocab " + std::to_string(I.V));
    if (yp[i] < 0 || yp[i] >= I.V_out) fail("target id " + std::to_string(yp[i]) + " is out of range for the unembedding's " + std::to_string(I.V_out) + " outputs");
  }
  if (b != I.b || T != I.T) I.alloc(b, T);
  torch::NoGradGuard ng;
  const int64_t D = I.D, H = I.H, Dh = I.Dh, HD = I.HD, L = I.L;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  const Tensor pos = I.W_pos.slice(0, 0, T);  // [T, D]

  // ---- forward ----
  // resid0 = W_E[x] (+ W_pos[t] unless shortformer)
  at::index_select_out(I.resid[0], I.W_E, 0, x.view({N}));
  if (!I.shortformer) I.resid[0].view({b, T, D}).add_(pos);
  for (int64_t l = 0; l < L; ++l) {
    // Fused weights [D, 3, H, Dh] from W_{Q,K,V} [H, D, Dh].
    auto w4 = I.w_qkv[l].view({D, 3, H, Dh});
    w4.select(1, 0).copy_(I.W_Q[l].permute({1, 0, 2}));
    w4.select(1, 1).copy_(I.W_K[l].permute({1, 0, 2}));
    w4.select(1, 2).copy_(I.W_V[l].permute({1, 0, 2}));
    const Tensor& r = I.resid[l];
    if (!I.shortformer) {
      gemm(r, I.w_qkv[l], I.qkv[l]);  // [N, 3HD]
    } else {
      Tensor qk3 = I.qk_in[l].view({b, T, D});
      at::add_out(qk3, r.view({b, T, D}), pos);
      auto qk_cols = I.qkv[l].slice(1, 0, 2 * HD), v_cols = I.qkv[l].slice(1, 2 * HD, 3 * HD);
      gemm(I.qk_in[l], I.w_qkv[l].slice(1, 0, 2 * HD), qk_cols);
      gemm(r, I.w_qkv[l].slice(1, 2 * HD, 3 * HD), v_cols);
    }
    if (I.bias) {
      auto b3 = I.qkv[l].view({N, 3, H, Dh});
      b3.select(1, 0).add_(I.b_Q[l]);
      b3.select(1, 1).add_(I.b_K[l]);
      b3.select(1, 2).add_(I.b_V[l]);
    }
    // Per-(sequence, head) products on strided blocks of qkv [N, 3HD] and z [N, HD]: no copies.
    const Tensor q = head_blocks(I.qkv[l], 0, b, T, H, Dh), k = head_blocks(I.qkv[l], 1, b, T, H, Dh),
                 v = head_blocks(I.qkv[l], 2, b, T, H, Dh);  // [b, H, T, Dh]
    gemm(q, k.transpose(-1, -2), I.scores.view({b, H, T, T}), scale);  // s·q·kᵀ   [bH, T, T]
    mask_future(I.scores);
    at::_softmax_out(I.pattern[l], I.scores, -1, false);
    gemm(I.pattern[l].view({b, H, T, T}), v, I.z[l].view({b, T, H, Dh}).permute({0, 2, 1, 3}));  // z = P·v
    // resid[l+1] = resid[l] + z · W_O (+ b_O)
    I.resid[l + 1].copy_(r);
    gemm(I.z[l], I.W_O[l].view({HD, D}), I.resid[l + 1], 1.0, 1.0);
    if (I.bias) I.resid[l + 1].add_(I.b_O[l]);
  }

  // ---- unembed + softmax + cross-entropy + its gradient, chunk by chunk ----
  const double g = grad_scale / static_cast<double>(N);
  const Tensor& xf = I.resid[L];  // [N, D]
  I.gW_U.zero_();
  if (I.bias) I.gb_U.zero_();
  double loss_sum = 0;
  const int64_t chunk = I.logits.size(0);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t n = std::min(chunk, N - r0);
    Tensor lg = I.logits.slice(0, 0, n);  // [n, V_out]
    const Tensor xc = xf.slice(0, r0, r0 + n);
    if (I.bias) {
      // Rows start as b_U (row memcpy: a broadcast copy_ through TensorIterator cost ~3x more).
      const size_t row_bytes = static_cast<size_t>(I.V_out) * lg.element_size();
      char* dst = static_cast<char*>(lg.data_ptr());
      const char* src = static_cast<const char*>(I.b_U.data_ptr());
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * row_bytes, src, row_bytes);
      gemm(xc, I.W_U, lg, 1.0, 1.0);
    } else {
      gemm(xc, I.W_U, lg);
    }
    // Vectorised softmax via ATen; loss from log p_y with a log-sum-exp fallback on underflow.
    std::vector<double> ty(n);
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_t", [&] {
      const scalar_t* p = lg.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) ty[i] = static_cast<double>(p[i * I.V_out + yp[r0 + i]]);
    });
    at::_softmax_out(lg, lg, 1, false);
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_g", [&] {
      scalar_t* p = lg.data_ptr<scalar_t>();
      bool underflow = false;
      for (int64_t i = 0; i < n; ++i) {
        const double py = static_cast<double>(p[i * I.V_out + yp[r0 + i]]);
        if (py > 1e-30) loss_sum -= std::log(py);
        else underflow = true;
      }
      if (underflow) {  // recompute those rows' loss from the logits: lse - logit_y
        Tensor lgc = I.bias ? at::addmm(I.b_U, xc, I.W_U) : at::mm(xc, I.W_U);
        Tensor lse_t = at::logsumexp(lgc.to(torch::kDouble), {1});
        const double* lp = lse_t.data_ptr<double>();
        for (int64_t i = 0; i < n; ++i)
          if (!(static_cast<double>(p[i * I.V_out + yp[r0 + i]]) > 1e-30)) loss_sum += lp[i] - ty[i];
      }
      for (int64_t i = 0; i < n; ++i) p[i * I.V_out + yp[r0 + i]] -= scalar_t(1);
    });
    // dlogits = g·(softmax - onehot) in place, and db_U += column sums, in one pass.
    AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "fast_xent_scale", [&] {
      scalar_t* p = lg.data_ptr<scalar_t>();
      scalar_t* gb = I.bias ? I.gb_U.data_ptr<scalar_t>() : nullptr;
      const scalar_t gs = static_cast<scalar_t>(g);
      const int64_t Vo = I.V_out;
      // Threads split the columns, so every b_U entry sums its rows in the same order
      // whatever the thread count.
      at::parallel_for(0, Vo, 256, [&](int64_t j0, int64_t j1) {
        for (int64_t i = 0; i < n; ++i) {
          scalar_t* row = p + i * Vo;
          for (int64_t j = j0; j < j1; ++j) row[j] *= gs;
          if (gb)
            for (int64_t j = j0; j < j1; ++j) gb[j] += row[j];
        }
      });
    });
    gemm(xc.t(), lg, I.gW_U, 1.0, 1.0);  // gW_U += xcᵀ · dlogits
    Tensor dxc = I.dresid.slice(0, r0, r0 + n);
    gemm(lg, I.W_U.t(), dxc);  // d xf
  }

  // ---- backward through the layers ----
  if (I.shortformer) I.dpos_rows.zero_();
  for (int64_t l = L - 1; l >= 0; --l) {
    const Tensor& r = I.resid[l];
    // attn_out = z · W_O + b_O; dresid passes through the residual unchanged.
    gemm(I.z[l].t(), I.dresid, I.gW_O[l]);  // [HD, D]
    if (I.bias) at::sum_out(I.gb_O[l], I.dresid, {0});
    gemm(I.dresid, I.W_O[l].view({HD, D}).t(), I.dz_flat);  // [N, HD]
    // Per-(sequence, head) blocks again: dz from dz_flat, dq/dk/dv straight into dqkv_flat.
    const Tensor dz = I.dz_flat.view({b, T, H, Dh}).permute({0, 2, 1, 3});  // [b, H, T, Dh]
    auto part = [&](const Tensor& flat, int64_t p) { return head_blocks(flat, p, b, T, H, Dh); };
    const Tensor q = part(I.qkv[l], 0), k = part(I.qkv[l], 1), v = part(I.qkv[l], 2);
    const Tensor P = I.pattern[l].view({b, H, T, T});
    const Tensor dS = I.dS.view({b, H, T, T});
    gemm(dz, v.transpose(-1, -2), I.dP.view({b, H, T, T}));  // dP = dz · vᵀ
    gemm(P.transpose(-1, -2), dz, part(I.dqkv_flat, 2));      // dv = Pᵀ · dz
    at::_softmax_backward_data_out(I.dS, I.dP, I.pattern[l], -1, P.scalar_type());  // dS (masked entries: P = 0)
    gemm(dS, k, part(I.dqkv_flat, 0), scale);                  // dq = s·dS·k
    gemm(dS.transpose(-1, -2), q, part(I.dqkv_flat, 1), scale);  // dk = s·dSᵀ·q
    if (I.bias) at::sum_out(I.gb_qkv[l], I.dqkv_flat, {0});
    if (!I.shortformer) {
      gemm(r.t(), I.dqkv_flat, I.gW_qkv[l]);                  // [D, 3HD]
      gemm(I.dqkv_flat, I.w_qkv[l].t(), I.dresid, 1.0, 1.0);  // dresid += dqkv · W_qkvᵀ
    } else {
      auto dqk = I.dqkv_flat.slice(1, 0, 2 * HD), dv = I.dqkv_flat.slice(1, 2 * HD, 3 * HD);
      Tensor gqk = I.gW_qkv[l].slice(1, 0, 2 * HD), gv = I.gW_qkv[l].slice(1, 2 * HD, 3 * HD);
      gemm(I.qk_in[l].t(), dqk, gqk);
      gemm(r.t(), dv, gv);
      gemm(dqk, I.w_qkv[l].slice(1, 0, 2 * HD).t(), I.dtmp);  // d qk_in [N, D]
      I.dpos_rows.add_(I.dtmp);
      I.dresid.add_(I.dtmp);
      gemm(dv, I.w_qkv[l].slice(1, 2 * HD, 3 * HD).t(), I.dresid, 1.0, 1.0);
    }
  }
  // Embeddings: dW_E[x[i]] += dresid[i] (in row order, deterministic); dW_pos[t] = Σ_b rows.
  I.gW_E.zero_();
  I.gW_pos.zero_();
  AT_DISPATCH_FLOATING_TYPES(I.gW_E.scalar_type(), "fast_embed_bwd", [&] {
    scalar_t* gw = I.gW_E.data_ptr<scalar_t>();
    const scalar_t* dr = I.dresid.data_ptr<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      scalar_t* dst = gw + xp[i] * D;
      const scalar_t* src = dr + i * D;
      for (int64_t d = 0; d < D; ++d) dst[d] += src[d];
    }
  });
  const Tensor& dpos_src = I.shortformer ? I.dpos_rows : I.dresid;
  Tensor gpos = I.gW_pos.slice(0, 0, T);
  at::sum_out(gpos, dpos_src.view({b, T, D}), {0});

  // ---- add into .grad() ----
  auto acc = [&](const Tensor& p, const Tensor& gsrc) {
    Tensor& gr = const_cast<Tensor&>(p).mutable_grad();
    if (!gr.defined()) gr = torch::zeros_like(p);
    gr.add_(gsrc);
  };
  // Gradients of the layers' weights were computed for loss·grad_scale already (g folds it in).
  acc(I.W_E, I.gW_E);
  acc(I.W_pos, I.gW_pos);
  acc(I.W_U, I.gW_U);
  if (I.bias) acc(I.b_U, I.gb_U);
  for (int64_t l = 0; l < L; ++l) {
    auto gw4 = I.gW_qkv[l].view({D, 3, H, Dh});
    acc(I.W_Q[l], gw4.select(1, 0).permute({1, 0, 2}));
    acc(I.W_K[l], gw4.select(1, 1).permute({1, 0, 2}));
    acc(I.W_V[l], gw4.select(1, 2).permute({1, 0, 2}));
    acc(I.W_O[l], I.gW_O[l].view({H, Dh, D}));
    if (I.bias) {
      auto gb = I.gb_qkv[l].view({3, H, Dh});
      acc(I.b_Q[l], gb[0]);
      acc(I.b_K[l], gb[1]);
      acc(I.b_V[l], gb[2]);
      acc(I.b_O[l], I.gb_O[l]);
    }
  }
  return loss_sum / static_cast<double>(N);
}

}  // namespace circuitlab::train
