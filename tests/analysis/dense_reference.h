// Plain references for the analysis tests: materialised small matrices and explicit loops,
// written independently of the fast paths (no Gram tricks, no λ(AB)=λ(BA), no QR).
// Not for production use: everything here is O(V²) or worse.
#pragma once
#include <torch/torch.h>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "models/config.h"

namespace circuitlab::analysis::testing {

using Mat = Eigen::MatrixXd;

inline Mat from_tensor(const torch::Tensor& t) {  // [R, C] -> Mat, element by element
  torch::Tensor c = t.to(torch::kFloat64).contiguous();
  auto a = c.accessor<double, 2>();
  Mat m(c.size(0), c.size(1));
  for (int64_t i = 0; i < c.size(0); ++i)
    for (int64_t j = 0; j < c.size(1); ++j) m(i, j) = a[i][j];
  return m;
}

inline double dense_positivity(const Mat& m) {
  Eigen::EigenSolver<Mat> es(m, false);
  double num = 0, den = 0;
  for (int i = 0; i < es.eigenvalues().size(); ++i) {
    num += es.eigenvalues()[i].real();
    den += std::abs(es.eigenvalues()[i]);
  }
  return num / den;
}

inline double fro(const Mat& m) {
  double s = 0;
  for (int i = 0; i < m.rows(); ++i)
    for (int j = 0; j < m.cols(); ++j) s += m(i, j) * m(i, j);
  return std::sqrt(s);
}

// A random state dict in TL names for `cfg` (LN weights away from 1, biases nonzero), double.
inline std::map<std::string, torch::Tensor> random_state_dict(const models::ModelConfig& cfg, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t D = cfg.d_model, H = cfg.n_heads, Dh = cfg.d_head, V = cfg.d_vocab, Vo = cfg.vocab_out();
  std::map<std::string, torch::Tensor> sd;
  sd["embed.W_E"] = torch::randn({V, D}, o) + 0.3;  // nonzero mean: centring matters
  sd["pos_embed.W_pos"] = torch::randn({cfg.n_ctx, D}, o) * 0.1;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    if (cfg.has_ln()) {
      sd[p + "ln1.w"] = 1.0 + 0.5 * torch::randn({D}, o);
      sd[p + "ln1.b"] = 0.1 * torch::randn({D}, o);
    }
    sd[p + "attn.W_Q"] = torch::randn({H, D, Dh}, o) / std::sqrt(double(D));
    sd[p + "attn.W_K"] = torch::randn({H, D, Dh}, o) / std::sqrt(double(D));
    sd[p + "attn.W_V"] = torch::randn({H, D, Dh}, o) / std::sqrt(double(D));
    sd[p + "attn.W_O"] = torch::randn({H, Dh, D}, o) / std::sqrt(double(Dh)) + 0.05;
    sd[p + "attn.b_Q"] = torch::randn({H, Dh}, o) * 0.1;
    sd[p + "attn.b_K"] = torch::randn({H, Dh}, o) * 0.1;
    sd[p + "attn.b_V"] = torch::randn({H, Dh}, o) * 0.1;
    sd[p + "attn.b_O"] = torch::randn({D}, o) * 0.1;
  }
  if (cfg.has_ln()) {
    sd["ln_final.w"] = 1.0 + 0.5 * torch::randn({D}, o);
    sd["ln_final.b"] = 0.1 * torch::randn({D}, o);
  }
  if (!cfg.tied_unembed) {
    sd["unembed.W_U"] = torch::randn({D, Vo}, o) / std::sqrt(double(D)) + 0.1;
    sd["unembed.b_U"] = torch::randn({Vo}, o) * 0.1;
  }
  return sd;
}

// Reference folding with loops (circuit_weights.h's documented choice), as dense matrices.
struct DenseFolded {
  int L, H, D, Dh, V, Vo;
  Mat E;                          // [V, D]   embedding rows, centred when LN
  Mat U;                          // [D, Vo]  unembedding, ln_final.w folded, centred
  std::vector<Mat> Q, K, Vv, O;   // per head [D, Dh] x3, [Dh, D]
};

inline DenseFolded dense_fold(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd) {
  DenseFolded f;
  f.L = cfg.n_layers; f.H = cfg.n_heads; f.D = cfg.d_model; f.Dh = cfg.d_head; f.V = cfg.d_vocab; f.Vo = cfg.vocab_out();
  const bool ln = cfg.has_ln();
  Mat E = from_tensor(sd.at("embed.W_E"));
  if (ln)
    for (int t = 0; t < f.V; ++t) {
      double mean = 0;
      for (int d = 0; d < f.D; ++d) mean += E(t, d) / f.D;
      for (int d = 0; d < f.D; ++d) E(t, d) -= mean;
    }
  f.E = E;
  Mat U = cfg.tied_unembed ? Mat(from_tensor(sd.at("embed.W_E")).transpose()) : from_tensor(sd.at("unembed.W_U"));
  if (ln) {
    Mat w = from_tensor(sd.at("ln_final.w").unsqueeze(1));
    for (int d = 0; d < f.D; ++d)
      for (int o = 0; o < f.Vo; ++o) U(d, o) *= w(d, 0);
    for (int o = 0; o < f.Vo; ++o) {  // centre over d_model
      double mean = 0;
      for (int d = 0; d < f.D; ++d) mean += U(d, o) / f.D;
      for (int d = 0; d < f.D; ++d) U(d, o) -= mean;
    }
  }
  for (int d = 0; d < f.D; ++d) {  // centre over vocab
    double mean = 0;
    for (int o = 0; o < f.Vo; ++o) mean += U(d, o) / f.Vo;
    for (int o = 0; o < f.Vo; ++o) U(d, o) -= mean;
  }
  f.U = U;
  for (int l = 0; l < f.L; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    Mat w = ln ? from_tensor(sd.at(p + "ln1.w").unsqueeze(1)) : Mat::Ones(f.D, 1);
    for (int h = 0; h < f.H; ++h) {
      auto read = [&](const char* name) {
        Mat W = from_tensor(sd.at(p + name)[h]);  // [D, Dh]
        for (int d = 0; d < f.D; ++d) W.row(d) *= w(d, 0);
        if (ln)
          for (int j = 0; j < f.Dh; ++j) {
            double mean = 0;
            for (int d = 0; d < f.D; ++d) mean += W(d, j) / f.D;
            for (int d = 0; d < f.D; ++d) W(d, j) -= mean;
          }
        return W;
      };
      f.Q.push_back(read("attn.W_Q"));
      f.K.push_back(read("attn.W_K"));
      f.Vv.push_back(read("attn.W_V"));
      Mat O = from_tensor(sd.at(p + "attn.W_O")[h]);  // [Dh, D]
      if (ln)
        for (int j = 0; j < f.Dh; ++j) {
          double mean = 0;
          for (int d = 0; d < f.D; ++d) mean += O(j, d) / f.D;
          for (int d = 0; d < f.D; ++d) O(j, d) -= mean;
        }
      f.O.push_back(O);
    }
  }
  return f;
}

// Two-sided relative/absolute closeness with the worst mismatch reported.
struct Close {
  double rtol, atol;
  bool operator()(double a, double b) const { return std::abs(a - b) <= atol + rtol * std::abs(b); }
};

}  // namespace circuitlab::analysis::testing
