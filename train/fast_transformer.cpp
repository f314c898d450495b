// See fast_transformer.h. Row-vector convention as the model (x · W). N = b·T rows; weights are
// used in GEMM-friendly flat layouts: W_qkv [D, 3·H·Dh] with columns (q|k|v, head, d_head),
// W_O [H·Dh, D]; per-head products run on strided views of the flat activations (fast_ops.h).
// Every gradient formula mirrors what autograd computes for HookedTransformer::forward. Models
// without LayerNorm and MLPs take exactly the operations of the earlier attention-only path (the
// presets' seeds were validated on them), so their losses are unchanged bit for bit.
#include "train/fast_transformer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/fast_ops.h"

namespace circuitlab::train {

using torch::Tensor;
using namespace fast_ops;

namespace {
// One LayerNorm's parameters, its gradients and its per-row statistics of the last forward.
struct LN {
  Tensor w, b;      // [D] parameters
  Tensor gw, gb;    // [D] gradients of the last backward
  Tensor out;       // [N, D] normalised output (the next GEMM's input)
  Tensor mean, rstd;  // [N]
};

struct Layer {
  Tensor W_Q, W_K, W_V, W_O;  // [H, D, Dh] ×3, [H, Dh, D]
  Tensor b_Q, b_K, b_V, b_O;  // [H, Dh] ×3, [D]
  Tensor W_in, b_in, W_out, b_out;  // [D, M], [M], [M, D], [D]
  LN ln1, ln2;
  Tensor w_qkv;   // [D, 3·HD] fused Q|K|V weights
  // Activations of the last forward.
  Tensor qk_in;   // [N, D] shortformer: attention input + pos
  Tensor qkv;     // [N, 3·HD]
  Tensor pattern; // [b·H, T, T]
  Tensor z;       // [N, HD]
  Tensor mid;     // [N, D] resid + attn_out (MLP models)
  Tensor pre, post;  // [N, M]
  // Gradients in flat layouts, added into .grad() at the end.
  Tensor gW_qkv, gb_qkv, gW_O, gb_O;  // [D, 3·HD], [3·HD], [HD, D], [D]
  Tensor gW_in, gb_in, gW_out, gb_out;
};

const char* act_approximate(const std::string& act_fn) { return act_fn == "gelu_new" ? "tanh" : "none"; }
}  // namespace

struct FastTransformer::Impl {
  models::HookedTransformer model{nullptr};
  int64_t L, D, H, Dh, HD, M, V, V_out, n_ctx;
  bool shortformer, bias, ln, mlp, tied;
  std::string act_fn;
  double eps;
  Tensor W_E, W_pos, W_U, b_U;  // [V, D], [n_ctx, D], [D, V_out] (W_Eᵀ view when tied), [V_out]
  std::vector<Layer> layers;
  LN ln_final;

  // Buffers (reallocated when b or T change).
  int64_t b = -1, T = -1;
  std::vector<Tensor> resid;  // L+1 × [N, D]: input of layer l; resid[L] feeds ln_final / the unembed
  Tensor scores;              // [b·H, T, T]
  Tensor logits;              // [chunk, V_out]
  Tensor dresid, dtmp, dxf;   // [N, D] ×3
  Tensor dP, dS;              // [b·H, T, T] ×2
  Tensor dz, dqkv, dpost;     // [N, HD], [N, 3·HD], [N, M]
  Tensor dpos_rows;           // [N, D] accumulated d(pos) per row (shortformer)
  Tensor gW_E, gW_pos, gW_U, gb_U;

  void bind(const std::map<std::string, Tensor>& sd);
  void alloc(int64_t b_, int64_t T_);
  const Tensor& attn_input(int64_t l) const { return ln ? layers[l].ln1.out : resid[l]; }
  const Tensor& unembed_input() const { return ln ? ln_final.out : resid[L]; }
  void forward_layer(int64_t l, const Tensor& pos, const AttnShape& s);
  void backward_mlp(int64_t l);
  void backward_attention(int64_t l, const AttnShape& s);
  void add_grads() const;
};

void FastTransformer::Impl::bind(const std::map<std::string, Tensor>& sd) {
  auto get = [&](const std::string& n) -> Tensor {
    auto it = sd.find(n);
    TORCH_CHECK(it != sd.end(), "fast training path: the model has no parameter '", n, "'");
    return it->second;
  };
  size_t covered = 0;
  auto take = [&](const std::string& n) {
    ++covered;
    return get(n);
  };
  W_E = take("embed.W_E");
  W_pos = take("pos_embed.W_pos");
  W_U = tied ? W_E.t() : take("unembed.W_U");
  if (bias && !tied) b_U = take("unembed.b_U");
  auto bind_ln = [&](LN& n, const std::string& p) {
    n.w = take(p + ".w");
    n.b = take(p + ".b");
  };
  layers.resize(L);
  for (int64_t l = 0; l < L; ++l) {
    Layer& Y = layers[l];
    const std::string p = "blocks." + std::to_string(l) + ".";
    Y.W_Q = take(p + "attn.W_Q");
    Y.W_K = take(p + "attn.W_K");
    Y.W_V = take(p + "attn.W_V");
    Y.W_O = take(p + "attn.W_O");
    if (bias) {
      Y.b_Q = take(p + "attn.b_Q");
      Y.b_K = take(p + "attn.b_K");
      Y.b_V = take(p + "attn.b_V");
      Y.b_O = take(p + "attn.b_O");
    }
    if (ln) bind_ln(Y.ln1, p + "ln1");
    if (mlp) {
      if (ln) bind_ln(Y.ln2, p + "ln2");
      Y.W_in = take(p + "mlp.W_in");
      Y.W_out = take(p + "mlp.W_out");
      if (bias) {
        Y.b_in = take(p + "mlp.b_in");
        Y.b_out = take(p + "mlp.b_out");
      }
    }
  }
  if (ln) bind_ln(ln_final, "ln_final");
  TORCH_CHECK(covered == model->parameters().size(), "fast training path: the model has ", model->parameters().size(),
              " parameters, the path covers ", covered);

  auto o = W_E.options().requires_grad(false);
  auto grads_of_ln = [&](LN& n) {
    n.gw = torch::empty({D}, o);
    n.gb = torch::empty({D}, o);
  };
  for (Layer& Y : layers) {
    Y.w_qkv = torch::empty({D, 3 * HD}, o);
    Y.gW_qkv = torch::empty({D, 3 * HD}, o);
    Y.gW_O = torch::empty({HD, D}, o);
    if (bias) {
      Y.gb_qkv = torch::empty({3 * HD}, o);
      Y.gb_O = torch::empty({D}, o);
    }
    if (ln) grads_of_ln(Y.ln1);
    if (mlp) {
      if (ln) grads_of_ln(Y.ln2);
      Y.gW_in = torch::empty({D, M}, o);
      Y.gW_out = torch::empty({M, D}, o);
      if (bias) {
        Y.gb_in = torch::empty({M}, o);
        Y.gb_out = torch::empty({D}, o);
      }
    }
  }
  if (ln) grads_of_ln(ln_final);
  gW_E = torch::empty({V, D}, o);
  gW_pos = torch::empty({n_ctx, D}, o);
  if (!tied) gW_U = torch::empty({D, V_out}, o);
  if (b_U.defined()) gb_U = torch::empty({V_out}, o);
}

void FastTransformer::Impl::alloc(int64_t b_, int64_t T_) {
  b = b_;
  T = T_;
  const int64_t N = b * T;
  auto o = W_E.options().requires_grad(false);
  auto rows = [&](int64_t cols) { return torch::empty({N, cols}, o); };
  auto ln_buffers = [&](LN& n) {
    n.out = rows(D);
    n.mean = torch::empty({N}, o);
    n.rstd = torch::empty({N}, o);
  };
  resid.assign(L + 1, Tensor());
  for (auto& r : resid) r = rows(D);
  for (Layer& Y : layers) {
    if (shortformer) Y.qk_in = rows(D);
    Y.qkv = rows(3 * HD);
    Y.pattern = torch::empty({b * H, T, T}, o);
    Y.z = rows(HD);
    if (ln) ln_buffers(Y.ln1);
    if (mlp) {
      Y.mid = rows(D);
      if (ln) ln_buffers(Y.ln2);
      Y.pre = rows(M);
      Y.post = rows(M);
    }
  }
  if (ln) ln_buffers(ln_final);
  scores = torch::empty({b * H, T, T}, o);
  logits = torch::empty({logits_chunk_rows(N, V_out, W_E.element_size()), V_out}, o);
  dresid = rows(D);
  dtmp = rows(D);
  if (ln) dxf = rows(D);
  if (shortformer) dpos_rows = rows(D);
  dP = torch::empty({b * H, T, T}, o);
  dS = torch::empty({b * H, T, T}, o);
  dz = rows(HD);
  dqkv = rows(3 * HD);
  if (mlp) dpost = rows(M);
}

bool FastTransformer::supports(const models::HookedTransformer& model, std::string* why) {
  const auto& c = model->cfg();
  auto no = [&](const char* w) {
    if (why) *why = w;
    return false;
  };
  if (!c.attn_only && c.act_fn != "gelu_new" && c.act_fn != "gelu" && c.act_fn != "relu")
    return no("unsupported MLP activation (gelu_new, gelu or relu)");
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

FastTransformer::FastTransformer(models::HookedTransformer model) : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!supports(model, &why)) fail("fast training path: " + why);
  auto& I = *impl_;
  I.model = model;
  const auto& c = model->cfg();
  I.L = c.n_layers;
  I.D = c.d_model;
  I.H = c.n_heads;
  I.Dh = c.d_head;
  I.HD = I.H * I.Dh;
  I.M = c.attn_only ? 0 : c.mlp_dim();
  I.V = c.d_vocab;
  I.V_out = c.vocab_out();
  I.n_ctx = c.n_ctx;
  I.shortformer = c.shortformer();
  I.bias = c.use_bias;
  I.ln = c.has_ln();
  I.mlp = !c.attn_only;
  I.tied = c.tied_unembed;
  I.act_fn = c.act_fn;
  I.eps = c.eps;
  I.bind(model->state_dict());
}

FastTransformer::~FastTransformer() = default;

const char* FastTransformer::path_name() const {
  return impl_->ln || impl_->mlp ? "fast_gpt2_blocks" : "fast_attn_only";
}

// resid[l] -> resid[l+1]: [LN1 ->] attention [-> + resid = mid -> LN2 -> MLP] -> + residual.
void FastTransformer::Impl::forward_layer(int64_t l, const Tensor& pos, const AttnShape& s) {
  Layer& Y = layers[l];
  const int64_t N = s.b * s.T;
  const Tensor& r = resid[l];
  if (ln) layer_norm_forward(r, Y.ln1.w, Y.ln1.b, eps, Y.ln1.out, Y.ln1.mean, Y.ln1.rstd);
  const Tensor& xa = attn_input(l);
  // Fused weights [D, 3, H, Dh] from W_{Q,K,V} [H, D, Dh].
  auto w4 = Y.w_qkv.view({D, 3, H, Dh});
  w4.select(1, 0).copy_(Y.W_Q.permute({1, 0, 2}));
  w4.select(1, 1).copy_(Y.W_K.permute({1, 0, 2}));
  w4.select(1, 2).copy_(Y.W_V.permute({1, 0, 2}));
  if (!shortformer) {
    gemm(xa, Y.w_qkv, Y.qkv);  // [N, 3HD]
  } else {
    // Shortformer (TL): W_pos is added to the Q and K inputs only.
    Tensor qk3 = Y.qk_in.view({s.b, s.T, D});
    at::add_out(qk3, xa.view({s.b, s.T, D}), pos);
    auto qk_cols = Y.qkv.slice(1, 0, 2 * HD), v_cols = Y.qkv.slice(1, 2 * HD, 3 * HD);
    gemm(Y.qk_in, Y.w_qkv.slice(1, 0, 2 * HD), qk_cols);
    gemm(xa, Y.w_qkv.slice(1, 2 * HD, 3 * HD), v_cols);
  }
  if (bias) {
    auto b3 = Y.qkv.view({N, 3, H, Dh});
    b3.select(1, 0).add_(Y.b_Q);
    b3.select(1, 1).add_(Y.b_K);
    b3.select(1, 2).add_(Y.b_V);
  }
  attention_forward(s, Y.qkv, scores, Y.pattern, Y.z);
  // after = resid[l] + z · W_O (+ b_O): mid when an MLP follows, else resid[l+1].
  Tensor& after = mlp ? Y.mid : resid[l + 1];
  after.copy_(r);
  gemm(Y.z, Y.W_O.view({HD, D}), after, 1.0, 1.0);
  if (bias) after.add_(Y.b_O);
  if (!mlp) return;
  if (ln) layer_norm_forward(Y.mid, Y.ln2.w, Y.ln2.b, eps, Y.ln2.out, Y.ln2.mean, Y.ln2.rstd);
  gemm(ln ? Y.ln2.out : Y.mid, Y.W_in, Y.pre);  // [N, M]
  if (bias) Y.pre.add_(Y.b_in);
  if (act_fn == "relu") at::clamp_min_out(Y.post, Y.pre, 0);
  else at::gelu_out(Y.post, Y.pre, act_approximate(act_fn));
  resid[l + 1].copy_(Y.mid);
  gemm(Y.post, Y.W_out, resid[l + 1], 1.0, 1.0);
  if (bias) resid[l + 1].add_(Y.b_out);
}

// dresid: d resid[l+1] on entry, d mid on exit.
void FastTransformer::Impl::backward_mlp(int64_t l) {
  Layer& Y = layers[l];
  gemm(Y.post.t(), dresid, Y.gW_out);  // [M, D]
  if (bias) at::sum_out(Y.gb_out, dresid, {0});
  gemm(dresid, Y.W_out.t(), dpost);  // [N, M]
  if (act_fn == "relu") at::threshold_backward_out(dpost, dpost, Y.pre, 0);
  else at::gelu_backward_out(dpost, dpost, Y.pre, act_approximate(act_fn));  // d pre, in place
  const Tensor& xm = ln ? Y.ln2.out : Y.mid;
  gemm(xm.t(), dpost, Y.gW_in);  // [D, M]
  if (bias) at::sum_out(Y.gb_in, dpost, {0});
  if (ln) {
    gemm(dpost, Y.W_in.t(), dtmp);  // d ln2.out
    layer_norm_backward(dtmp, Y.mid, Y.ln2.mean, Y.ln2.rstd, Y.ln2.w, dresid, Y.ln2.gw, Y.ln2.gb);
  } else {
    gemm(dpost, Y.W_in.t(), dresid, 1.0, 1.0);
  }
}

// dresid: d(attention block output) on entry, d resid[l] on exit.
void FastTransformer::Impl::backward_attention(int64_t l, const AttnShape& s) {
  Layer& Y = layers[l];
  const Tensor& xa = attn_input(l);
  // attn_out = z · W_O + b_O; dresid passes through the residual unchanged.
  gemm(Y.z.t(), dresid, Y.gW_O);  // [HD, D]
  if (bias) at::sum_out(Y.gb_O, dresid, {0});
  gemm(dresid, Y.W_O.view({HD, D}).t(), dz);  // [N, HD]
  attention_backward(s, Y.qkv, Y.pattern, dz, dP, dS, dqkv);
  if (bias) at::sum_out(Y.gb_qkv, dqkv, {0});
  // d(attention input) goes straight into dresid without LayerNorm, through dtmp and the
  // LayerNorm backward with it.
  if (!shortformer) {
    gemm(xa.t(), dqkv, Y.gW_qkv);  // [D, 3HD]
    if (ln) gemm(dqkv, Y.w_qkv.t(), dtmp);
    else gemm(dqkv, Y.w_qkv.t(), dresid, 1.0, 1.0);  // dresid += dqkv · W_qkvᵀ
  } else {
    auto dqk = dqkv.slice(1, 0, 2 * HD), dv = dqkv.slice(1, 2 * HD, 3 * HD);
    Tensor gqk = Y.gW_qkv.slice(1, 0, 2 * HD), gv = Y.gW_qkv.slice(1, 2 * HD, 3 * HD);
    gemm(Y.qk_in.t(), dqk, gqk);
    gemm(xa.t(), dv, gv);
    gemm(dqk, Y.w_qkv.slice(1, 0, 2 * HD).t(), dtmp);  // d qk_in [N, D]
    dpos_rows.add_(dtmp);
    if (ln) {
      gemm(dv, Y.w_qkv.slice(1, 2 * HD, 3 * HD).t(), dtmp, 1.0, 1.0);
    } else {
      dresid.add_(dtmp);
      gemm(dv, Y.w_qkv.slice(1, 2 * HD, 3 * HD).t(), dresid, 1.0, 1.0);
    }
  }
  if (ln) layer_norm_backward(dtmp, resid[l], Y.ln1.mean, Y.ln1.rstd, Y.ln1.w, dresid, Y.ln1.gw, Y.ln1.gb);
}

// Gradients of the layers' weights were computed for loss·grad_scale already (g folds it in).
void FastTransformer::Impl::add_grads() const {
  const auto acc = accumulate_grad;
  acc(W_E, gW_E);
  acc(W_pos, gW_pos);
  if (!tied) acc(W_U, gW_U);
  if (b_U.defined()) acc(b_U, gb_U);
  auto acc_ln = [&](const LN& n) {
    acc(n.w, n.gw);
    acc(n.b, n.gb);
  };
  for (const Layer& Y : layers) {
    auto gw4 = Y.gW_qkv.view({D, 3, H, Dh});
    acc(Y.W_Q, gw4.select(1, 0).permute({1, 0, 2}));
    acc(Y.W_K, gw4.select(1, 1).permute({1, 0, 2}));
    acc(Y.W_V, gw4.select(1, 2).permute({1, 0, 2}));
    acc(Y.W_O, Y.gW_O.view({H, Dh, D}));
    if (bias) {
      auto gb = Y.gb_qkv.view({3, H, Dh});
      acc(Y.b_Q, gb[0]);
      acc(Y.b_K, gb[1]);
      acc(Y.b_V, gb[2]);
      acc(Y.b_O, Y.gb_O);
    }
    if (ln) acc_ln(Y.ln1);
    if (mlp) {
      if (ln) acc_ln(Y.ln2);
      acc(Y.W_in, Y.gW_in);
      acc(Y.W_out, Y.gW_out);
      if (bias) {
        acc(Y.b_in, Y.gb_in);
        acc(Y.b_out, Y.gb_out);
      }
    }
  }
  if (ln) acc_ln(ln_final);
}

double FastTransformer::forward_backward(const Tensor& x_in, const Tensor& y_in, double grad_scale) {
  auto& I = *impl_;
  TORCH_CHECK(x_in.dim() == 2 && y_in.sizes() == x_in.sizes(), "fast training path: tokens and targets must both be [b, T], got ",
              x_in.sizes(), " and ", y_in.sizes());
  const int64_t b = x_in.size(0), T = x_in.size(1), N = b * T;
  TORCH_CHECK(T >= 1 && T <= I.n_ctx && b >= 1, "fast training path: need 1 <= T <= n_ctx (", I.n_ctx, "), got [", b, ", ", T, "]");
  const Tensor x = x_in.to(torch::kLong).contiguous(), y = y_in.to(torch::kLong).contiguous();
  const int64_t* xp = x.data_ptr<int64_t>();
  const int64_t* yp = y.data_ptr<int64_t>();
  check_ids(xp, yp, N, I.V, I.V_out);
  if (b != I.b || T != I.T) I.alloc(b, T);
  torch::NoGradGuard ng;
  const int64_t D = I.D, L = I.L;
  const AttnShape shape{b, T, I.H, I.Dh};
  const Tensor pos = I.W_pos.slice(0, 0, T);  // [T, D]

  // ---- forward: resid0 = W_E[x] (+ W_pos[t] unless shortformer), then the blocks ----
  at::index_select_out(I.resid[0], I.W_E, 0, x.view({N}));
  if (!I.shortformer) I.resid[0].view({b, T, D}).add_(pos);
  for (int64_t l = 0; l < L; ++l) I.forward_layer(l, pos, shape);
  if (I.ln) layer_norm_forward(I.resid[L], I.ln_final.w, I.ln_final.b, I.eps, I.ln_final.out, I.ln_final.mean,
                               I.ln_final.rstd);

  // ---- unembed + softmax + cross-entropy + its gradient, chunk by chunk ----
  const double g = grad_scale / static_cast<double>(N);
  I.gW_E.zero_();  // the tied unembedding adds into it first
  if (!I.tied) I.gW_U.zero_();
  if (I.gb_U.defined()) I.gb_U.zero_();
  UnembedGrads ug{I.gW_U, I.tied ? I.gW_E : Tensor(), I.gb_U};
  const double loss_sum =
      unembed_cross_entropy(I.unembed_input(), I.W_U, I.b_U, yp, g, I.logits, ug, I.ln ? I.dxf : I.dresid);
  if (I.ln) {
    I.dresid.zero_();
    layer_norm_backward(I.dxf, I.resid[L], I.ln_final.mean, I.ln_final.rstd, I.ln_final.w, I.dresid, I.ln_final.gw,
                        I.ln_final.gb);
  }

  // ---- backward through the layers ----
  if (I.shortformer) I.dpos_rows.zero_();
  for (int64_t l = L - 1; l >= 0; --l) {
    if (I.mlp) I.backward_mlp(l);
    I.backward_attention(l, shape);
  }
  // Embeddings: dW_E[x[i]] += dresid[i] (in row order, deterministic); dW_pos[t] = Σ_b rows.
  I.gW_pos.zero_();
  embed_backward(I.gW_E, I.dresid, xp);
  const Tensor& dpos_src = I.shortformer ? I.dpos_rows : I.dresid;
  Tensor gpos = I.gW_pos.slice(0, 0, T);
  at::sum_out(gpos, dpos_src.view({b, T, D}), {0});

  I.add_grads();
  return loss_sum / static_cast<double>(N);
}

}  // namespace circuitlab::train
