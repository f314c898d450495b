// LayerNorm folding and the embedding Gram matrices (see circuit_weights.h for the choices).
#include "analysis/circuit_weights.h"

#include "models/gemm.h"

#include "analysis/batched_gram.h"
#include "core/error.h"

namespace circuitlab::analysis {

namespace {

torch::Tensor get(const std::map<std::string, torch::Tensor>& sd, const std::string& name,
                  std::vector<int64_t> shape) {
  auto it = sd.find(name);
  if (it == sd.end()) fail("model weights: tensor '" + name + "' is missing");
  torch::Tensor t = it->second.detach().to(torch::kCPU);
  if (t.sizes().vec() != shape) {
    std::string want = "[";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? "," : "") + std::to_string(shape[i]);
    fail("model weights: tensor '" + name + "' has shape " + c10::str(t.sizes()) + ", expected " + want + "]");
  }
  return t;
}

bool has(const std::map<std::string, torch::Tensor>& sd, const std::string& name) { return sd.count(name) > 0; }

// Centre over dim (subtract the mean).
torch::Tensor centre(const torch::Tensor& t, int64_t dim) { return t - t.mean(dim, /*keepdim=*/true); }

}  // namespace

FactoredMatrix CircuitWeights::OV(int layer, int head) const {
  const int i = idx(layer, head);
  return FactoredMatrix(W_V(i), W_O(i));
}

FactoredMatrix CircuitWeights::QK(int layer, int head) const {
  const int i = idx(layer, head);
  return FactoredMatrix(W_Q(i), W_K(i).transpose());
}

torch::Tensor CircuitWeights::W_U_folded() const {
  if (!tied) return W_U;
  torch::Tensor wu = W_E_raw.t();  // [D, V]
  if (unembed_ln_w.size() > 0) wu = centre(to_torch(unembed_ln_w, wu.scalar_type()).view({D, 1}) * wu, 0);
  else wu = wu.contiguous();
  return opts.center_unembed ? centre(wu, 1) : wu;
}

std::string CircuitWeights::folding_statement() const {
  std::string s;
  if (cfg.has_ln() && opts.fold_ln)
    s += "ln1.w folded into W_Q/W_K/W_V and ln_final.w into W_U, reading weights centred (LN mean subtraction); ";
  else if (cfg.has_ln())
    s += "LN weights not folded; ";
  else
    s += "model has no LayerNorm: nothing folded; ";
  if (cfg.has_ln() && opts.center_writing) s += "W_E and W_O centred over d_model; ";
  if (opts.center_unembed) s += "W_U centred over the vocabulary; ";
  s += "LN's per-token 1/sigma dropped (a per-token scalar); biases excluded from token circuits; "
       "W_pos excluded from token-token circuits";
  s += cfg.shortformer() ? " (shortformer: positions only enter Q/K inputs)." : " (standard positions).";
  return s;
}

CircuitWeights fold_circuit_weights(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd,
                                    FoldOptions opts) {
  CircuitWeights w;
  w.cfg = cfg;
  w.opts = opts;
  w.L = cfg.n_layers;
  w.H = cfg.n_heads;
  w.D = cfg.d_model;
  w.Dh = cfg.d_head;
  w.V = cfg.d_vocab;
  w.V_out = cfg.vocab_out();
  const bool ln = cfg.has_ln();
  const bool fold = ln && opts.fold_ln;
  const bool centre_w = ln && opts.center_writing;
  torch::NoGradGuard ng;
  const auto f64 = torch::kFloat64;

  // [V, D] in big_dtype only (a V×D double copy costs more than the float GEMMs it feeds).
  torch::Tensor W_E = get(sd, "embed.W_E", {w.V, w.D}).to(opts.big_dtype);
  w.tied = !has(sd, "unembed.W_U");
  if (w.tied && !cfg.tied_unembed && !cfg.gpt2())
    fail("model weights: tensor 'unembed.W_U' is missing (and the config does not tie it to W_E)");
  if (w.tied && w.V_out != w.V) fail("model weights: tied unembedding needs d_vocab_out == d_vocab");

  // Final LN folded into the unembedding: W_U' = P·diag(w_f)·W_U, b_U' = b_U + b_f·W_U.
  torch::Tensor wf = torch::ones({w.D}, f64), bf = torch::zeros({w.D}, f64);
  if (fold) {
    wf = get(sd, "ln_final.w", {w.D}).to(f64);
    if (has(sd, "ln_final.b")) bf = get(sd, "ln_final.b", {w.D}).to(f64);
  }
  torch::Tensor b_U = has(sd, "unembed.b_U") ? get(sd, "unembed.b_U", {w.V_out}).to(f64) : torch::zeros({w.V_out}, f64);
  if (w.tied) {
    // W_U = W_Eᵀ: W_U' = (P·diag(w_f) or I)·W_Eᵀ·C_vocab, kept implicit (never V×D twice).
    if (fold) w.unembed_ln_w = to_eigen(wf);
    w.W_E_raw = W_E;
    w.b_U = b_U + torch::matmul(bf.to(W_E.scalar_type()), W_E.t()).to(f64);
  } else {
    torch::Tensor W_U = get(sd, "unembed.W_U", {w.D, w.V_out}).to(f64);  // [D, V_out]
    w.b_U = b_U + torch::matmul(bf, W_U);
    if (fold) W_U = centre(wf.unsqueeze(1) * W_U, 0);
    if (opts.center_unembed) W_U = centre(W_U, 1);
    w.W_U = W_U.to(opts.big_dtype);
  }
  if (opts.center_unembed) w.b_U = w.b_U - w.b_U.mean();
  w.W_E = centre_w ? centre(W_E, 1) : W_E;  // in big_dtype (torch's mean sums pairwise)

  // Per-head factors folded in place in four preallocated float64 stacks (no per-layer
  // temporaries); CircuitWeights::W_Q(i) etc. are views into them.
  const int64_t N = static_cast<int64_t>(w.L) * w.H;
  const auto opt64 = torch::TensorOptions().dtype(f64);
  StackedHeads& st = w.stacked;
  st.Q = torch::empty({N, w.D, w.Dh}, opt64);
  st.K = torch::empty({N, w.D, w.Dh}, opt64);
  st.V = torch::empty({N, w.D, w.Dh}, opt64);
  st.O = torch::empty({N, w.Dh, w.D}, opt64);
  for (int l = 0; l < w.L; ++l) {
    const std::string pre = "blocks." + std::to_string(l) + ".";
    torch::Tensor w1 = fold ? get(sd, pre + "ln1.w", {w.D}).to(f64).view({1, w.D, 1}) : torch::Tensor();
    auto read = [&](torch::Tensor& stack, const char* name) {  // [H, D, Dh] -> P·diag(w1)·W
      torch::Tensor slab = stack.narrow(0, static_cast<int64_t>(l) * w.H, w.H);
      slab.copy_(get(sd, pre + name, {w.H, w.D, w.Dh}));
      if (fold) {
        slab.mul_(w1);
        slab.sub_(slab.mean(1, /*keepdim=*/true));
      }
    };
    read(st.Q, "attn.W_Q");
    read(st.K, "attn.W_K");
    read(st.V, "attn.W_V");
    torch::Tensor slab = st.O.narrow(0, static_cast<int64_t>(l) * w.H, w.H);
    slab.copy_(get(sd, pre + "attn.W_O", {w.H, w.Dh, w.D}));
    if (centre_w) slab.sub_(slab.mean(2, /*keepdim=*/true));
  }
  // The Dh×Dh Grams, multiplied in big_dtype (float32: oneDNN, items over the threads) and
  // stored as double.
  const torch::Dtype dt = opts.big_dtype;
  auto gram = [dt](const torch::Tensor& a, const torch::Tensor& b) {
    return models::gemm::bmm(a.to(dt), b.to(dt)).to(f64);
  };
  st.S_Q = gram(st.Q.transpose(1, 2), st.Q);
  st.S_K = gram(st.K.transpose(1, 2), st.K);
  st.S_V = gram(st.V.transpose(1, 2), st.V);
  st.S_O = gram(st.O, st.O.transpose(1, 2));
  return w;
}

EmbedGrams embed_grams(const CircuitWeights& w) {
  torch::NoGradGuard ng;
  EmbedGrams g;
  if (!w.tied) {
    g.qk = to_eigen(gram_tn(w.W_E));                   // [D, D]
    g.ov = to_eigen(torch::matmul(w.W_U, w.W_E));      // [D, D]
    return g;
  }
  // Tied: one Gram K = W_rawᵀ·W_raw. W_E' = W_raw·P (P = I − 11ᵀ/D with LN centring, else I),
  // so qk = P·K·P; W_U' = R·W_rawᵀ·C (R = P·diag(w_f) when ln_final is folded, C: vocabulary
  // centring), so ov = R·W_rawᵀ·C·W_raw·P = R·(K − V·μμᵀ)·P, μ = mean row. The P products are
  // centrings, O(D²): P·A subtracts column means, A·P row means.
  const Mat K = to_eigen(gram_tn(w.W_E_raw));
  const bool centre_w = w.cfg.has_ln() && w.opts.center_writing;
  auto centre_cols = [](Mat& a) { a.rowwise() -= a.colwise().mean(); };  // P·a
  auto centre_rows = [](Mat& a) { a.colwise() -= a.rowwise().mean(); };  // a·P
  g.qk = K;
  if (centre_w) {
    centre_cols(g.qk);
    centre_rows(g.qk);
  }
  g.ov = K;
  if (w.opts.center_unembed) {
    // Mean row [D, 1], summed in double a block of rows at a time (no V×D double copy).
    torch::Tensor sum = torch::zeros({w.D}, torch::TensorOptions().dtype(torch::kFloat64));
    for (const auto& rows : w.W_E_raw.split(8192, 0)) sum += rows.to(torch::kFloat64).sum(0);
    const Vec mu = to_eigen(sum / static_cast<double>(w.V));
    g.ov.noalias() -= static_cast<double>(w.V) * mu * mu.transpose();
  }
  if (w.unembed_ln_w.size() > 0) {
    g.ov = w.unembed_ln_w.asDiagonal() * g.ov;
    centre_cols(g.ov);
  }
  if (centre_w) centre_rows(g.ov);
  return g;
}

}  // namespace circuitlab::analysis
