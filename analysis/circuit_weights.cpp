// LayerNorm folding and the embedding Gram matrices (see circuit_weights.h for the choices).
#include "analysis/circuit_weights.h"
#include "models/gemm.h"

#include <cstring>

#include "analysis/batched_gram.h"
#include "data/error.h"

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
  return FactoredMatrix(W_V[i], W_O[i]);
}

FactoredMatrix CircuitWeights::QK(int layer, int head) const {
  const int i = idx(layer, head);
  return FactoredMatrix(W_Q[i], W_K[i].transpose());
}

torch::Tensor CircuitWeights::W_U_folded() const {
  if (!tied) return W_U;
  torch::Tensor left = to_torch(unembed_left, W_E_raw.scalar_type());
  torch::Tensor wu = models::gemm::mm(left, W_E_raw.t());  // [D, V]
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
  if (w.tied && !cfg.tied_unembed && cfg.family != "gpt2")
    fail("model weights: tensor 'unembed.W_U' is missing (and the config does not tie it to W_E)");
  if (w.tied && w.V_out != w.V) fail("model weights: tied unembedding needs d_vocab_out == d_vocab");

  // Final LN folded into the unembedding: W_U' = P·diag(w_f)·W_U, b_U' = b_U + b_f·W_U.
  torch::Tensor wf = torch::ones({w.D}, f64), bf = torch::zeros({w.D}, f64);
  if (fold) {
    wf = get(sd, "ln_final.w", {w.D}).to(f64);
    if (has(sd, "ln_final.b")) bf = get(sd, "ln_final.b", {w.D}).to(f64);
  }
  torch::Tensor b_U = has(sd, "unembed.b_U") ? get(sd, "unembed.b_U", {w.V_out}).to(f64) : torch::zeros({w.V_out}, f64);
  Mat P = Mat::Identity(w.D, w.D);
  if (ln) P.array() -= 1.0 / w.D;

  if (w.tied) {
    // W_U = W_Eᵀ: W_U' = (P·diag(w_f) or I)·W_Eᵀ·C_vocab, kept implicit (never V×D twice).
    Mat R = Mat::Identity(w.D, w.D);
    if (fold) R = P * to_eigen(wf).asDiagonal();
    w.unembed_left = R;
    w.W_E_raw = W_E;
    w.b_U = b_U + torch::matmul(bf.to(W_E.scalar_type()), W_E.t()).to(f64);
  } else {
    torch::Tensor W_U = get(sd, "unembed.W_U", {w.D, w.V_out}).to(f64);  // [D, V_out]
    w.b_U = b_U + torch::matmul(bf, W_U);
    if (fold) W_U = centre(wf.unsqueeze(1) * W_U, 0);
    if (opts.center_unembed) W_U = centre(W_U, 1);
    w.W_U = W_U.to(opts.big_dtype);
  }
  if (w.tied && opts.center_unembed) w.b_U = w.b_U - w.b_U.mean();
  if (!w.tied && opts.center_unembed) w.b_U = w.b_U - w.b_U.mean();
  w.W_E = centre_w ? centre(W_E, 1) : W_E;  // in big_dtype (torch's mean sums pairwise)

  std::vector<torch::Tensor> sq, sk, sv, so;
  for (int l = 0; l < w.L; ++l) {
    const std::string pre = "blocks." + std::to_string(l) + ".";
    torch::Tensor w1 = fold ? get(sd, pre + "ln1.w", {w.D}).to(f64) : torch::ones({w.D}, f64);
    torch::Tensor Wq = get(sd, pre + "attn.W_Q", {w.H, w.D, w.Dh}).to(f64);
    torch::Tensor Wk = get(sd, pre + "attn.W_K", {w.H, w.D, w.Dh}).to(f64);
    torch::Tensor Wv = get(sd, pre + "attn.W_V", {w.H, w.D, w.Dh}).to(f64);
    torch::Tensor Wo = get(sd, pre + "attn.W_O", {w.H, w.Dh, w.D}).to(f64);
    auto read = [&](const torch::Tensor& W) {  // [H, D, Dh] -> P·diag(w1)·W
      torch::Tensor s = W * w1.view({1, w.D, 1});
      return fold ? centre(s, 1) : s;
    };
    Wq = read(Wq);
    Wk = read(Wk);
    Wv = read(Wv);
    if (centre_w) Wo = centre(Wo, 2);
    sq.push_back(Wq);
    sk.push_back(Wk);
    sv.push_back(Wv);
    so.push_back(Wo);
    // Per-head Eigen copies: column-major [r, c] storage is row-major [c, r], so transpose the
    // whole layer once in torch and copy each head's block as it is.
    auto heads_to_eigen = [&](const torch::Tensor& W, std::vector<Mat>& dst) {  // W [H, r, c]
      torch::Tensor T = W.transpose(1, 2).contiguous();                         // [H, c, r]
      for (int h = 0; h < w.H; ++h) {
        Mat m(W.size(1), W.size(2));
        std::memcpy(m.data(), T[h].data_ptr<double>(), sizeof(double) * static_cast<size_t>(m.size()));
        dst.push_back(std::move(m));
      }
    };
    heads_to_eigen(Wq, w.W_Q);
    heads_to_eigen(Wk, w.W_K);
    heads_to_eigen(Wv, w.W_V);
    heads_to_eigen(Wo, w.W_O);
  }
  if (w.L > 0) {
    w.stacked.Q = torch::cat(sq, 0).contiguous();
    w.stacked.K = torch::cat(sk, 0).contiguous();
    w.stacked.V = torch::cat(sv, 0).contiguous();
    w.stacked.O = torch::cat(so, 0).contiguous();
    w.stacked = stack_heads(w);  // adds the Dh×Dh Grams
  }
  return w;
}

StackedHeads stack_heads(const CircuitWeights& w) {
  torch::NoGradGuard ng;
  if (w.stacked.S_O.defined()) return w.stacked;
  StackedHeads s = w.stacked;
  auto grams = [](StackedHeads& t) {
    t.S_Q = torch::bmm(t.Q.transpose(1, 2), t.Q);
    t.S_K = torch::bmm(t.K.transpose(1, 2), t.K);
    t.S_V = torch::bmm(t.V.transpose(1, 2), t.V);
    t.S_O = torch::bmm(t.O, t.O.transpose(1, 2));
  };
  if (s.Q.defined()) {
    grams(s);
    return s;
  }
  const int64_t N = static_cast<int64_t>(w.W_Q.size());
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  s.Q = torch::empty({N, w.D, w.Dh}, opt);
  s.K = torch::empty({N, w.D, w.Dh}, opt);
  s.V = torch::empty({N, w.D, w.Dh}, opt);
  s.O = torch::empty({N, w.Dh, w.D}, opt);
  for (int64_t i = 0; i < N; ++i) {
    // Row-major [rows, cols] maps of each slice; Eigen copies across the storage orders.
    auto put = [&](const torch::Tensor& dst, const Mat& m) {
      Eigen::Map<RowMajorMat>(dst[i].data_ptr<double>(), m.rows(), m.cols()) = m;
    };
    put(s.Q, w.W_Q[i]);
    put(s.K, w.W_K[i]);
    put(s.V, w.W_V[i]);
    put(s.O, w.W_O[i]);
  }
  grams(s);
  return s;
}

EmbedGrams embed_grams(const CircuitWeights& w) {
  torch::NoGradGuard ng;
  EmbedGrams g;
  if (!w.tied) {
    g.qk = to_eigen(gram_tn(w.W_E));                   // [D, D]
    g.ov = to_eigen(torch::matmul(w.W_U, w.W_E));      // [D, D]
    return g;
  }
  // Tied: one Gram K = W_rawᵀ·W_raw. W_E' = W_raw·P (P = I without LN/centring), so
  // qk = P·K·P; W_U' = R·W_rawᵀ·C, so ov = R·W_rawᵀ·C·W_raw·P = R·(K − V·μμᵀ)·P, μ = mean row.
  Mat K = to_eigen(gram_tn(w.W_E_raw));
  Mat P = Mat::Identity(w.D, w.D);
  if (w.cfg.has_ln() && w.opts.center_writing) P.array() -= 1.0 / w.D;
  Mat Kc = K;
  if (w.opts.center_unembed) {
    // Mean row [D, 1], summed in double a block of rows at a time (no V×D double copy).
    torch::Tensor sum = torch::zeros({w.D}, torch::TensorOptions().dtype(torch::kFloat64));
    for (const auto& rows : w.W_E_raw.split(8192, 0)) sum += rows.to(torch::kFloat64).sum(0);
    Mat mu = to_eigen(sum / static_cast<double>(w.V));
    Kc -= static_cast<double>(w.V) * mu * mu.transpose();
  }
  g.qk = P * K * P;
  g.ov = w.unembed_left * Kc * P;
  return g;
}

}  // namespace circuitlab::analysis
