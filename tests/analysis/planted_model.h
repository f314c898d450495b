// A 2-layer attention-only model with a planted induction circuit, built by hand from one-hot
// embeddings: residual = [token one-hot (V) | position one-hot (n_ctx) | previous-token slot (V)].
// Layer 0 head 0 is an exact previous-token head (query pos i matches key pos i−1) writing the
// attended token into the previous-token slot; layer 1 head 0 is an exact induction head
// (query = current token, key = previous-token slot) copying the attended token to the logits.
// Every other head has small random weights. No LN, no biases.
#pragma once
#include <torch/torch.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "data/shards.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis::testing {

constexpr int kPV = 100, kPCtx = 128, kPHeads = 3;

inline models::ModelConfig planted_config() {
  models::ModelConfig c;
  c.n_layers = 2;
  c.n_heads = kPHeads;
  c.d_vocab = kPV;
  c.n_ctx = kPCtx;
  c.d_model = kPV + kPCtx + kPV;
  c.d_head = kPCtx;
  c.normalization_type = models::Normalization::None;
  c.use_bias = false;
  c.attn_only = true;
  return c;
}

inline std::map<std::string, torch::Tensor> planted_state_dict(uint64_t seed = 3, double beta = 40.0) {
  auto c = planted_config();
  torch::manual_seed(seed);
  const int64_t V = kPV, T = kPCtx, D = c.d_model, Dh = c.d_head, H = c.n_heads;
  const int64_t tok0 = 0, pos0 = V, prev0 = V + T;
  const double scale = beta * std::sqrt(static_cast<double>(Dh));  // scores are divided by √Dh
  std::map<std::string, torch::Tensor> sd;
  torch::Tensor E = torch::zeros({V, D}), P = torch::zeros({T, D}), U = torch::zeros({D, V});
  for (int64_t t = 0; t < V; ++t) E[t][tok0 + t] = 1, U[tok0 + t][t] = 1;
  for (int64_t p = 0; p < T; ++p) P[p][pos0 + p] = 1;
  sd["embed.W_E"] = E;
  sd["pos_embed.W_pos"] = P;
  sd["unembed.W_U"] = U;
  for (int l = 0; l < 2; ++l) {
    torch::Tensor Q = torch::randn({H, D, Dh}) * 0.02, K = torch::randn({H, D, Dh}) * 0.02;
    torch::Tensor Vw = torch::randn({H, D, Dh}) * 0.02, O = torch::randn({H, Dh, D}) * 0.02;
    Q[0].zero_(); K[0].zero_(); Vw[0].zero_(); O[0].zero_();
    if (l == 0) {
      // previous-token head: q(pos i) = e_i·scale, k(pos j) = e_{j+1}; OV: token t -> prev slot t
      for (int64_t p = 0; p < T; ++p) Q[0][pos0 + p][p] = scale;
      for (int64_t p = 0; p + 1 < T; ++p) K[0][pos0 + p][p + 1] = 1;
      for (int64_t t = 0; t < V; ++t) Vw[0][tok0 + t][t] = 1, O[0][t][prev0 + t] = 1;
    } else {
      // induction head: q = current token, k = previous-token slot; OV copies the token
      for (int64_t t = 0; t < V; ++t) Q[0][tok0 + t][t] = scale, K[0][prev0 + t][t] = 1;
      for (int64_t t = 0; t < V; ++t) Vw[0][tok0 + t][t] = 1, O[0][t][tok0 + t] = 4;
    }
    const std::string p = "blocks." + std::to_string(l) + ".attn.";
    sd[p + "W_Q"] = Q;
    sd[p + "W_K"] = K;
    sd[p + "W_V"] = Vw;
    sd[p + "W_O"] = O;
  }
  return sd;
}

// Shards in the planted model's vocabulary with repeats (so in-context learning exists):
// random 30-token phrases, each said twice; dir/train.bin (40k tokens) and dir/val.bin (8k).
inline void write_repeated_phrase_shards(const std::string& dir) {
  std::mt19937 rng(3);
  std::vector<int32_t> toks;
  while (toks.size() < 40000) {
    std::vector<int32_t> phrase(30);
    for (auto& t : phrase) t = static_cast<int32_t>(rng() % kPV);
    toks.insert(toks.end(), phrase.begin(), phrase.end());
    toks.insert(toks.end(), phrase.begin(), phrase.end());
  }
  data::write_nanogpt_shard(dir + "/train.bin", toks);
  data::write_nanogpt_shard(dir + "/val.bin", std::vector<int32_t>(toks.begin(), toks.begin() + 8000));
}

inline models::HookedTransformer planted_model() {
  models::HookedTransformer m(planted_config());
  m->load_state_dict(planted_state_dict(), "planted induction model");
  m->eval();
  return m;
}

}  // namespace circuitlab::analysis::testing
