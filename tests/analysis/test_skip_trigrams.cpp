// Skip-trigrams and skip-trigram bugs (paper §"Interpretation as Skip-Trigrams", §"Skip-Trigram
// Bugs") on a planted one-layer model: head 0's full QK circuit is a planted matrix A (query =
// destination, key = source) and its full OV circuit a planted B (source → output logits), so
// the table must read back exactly the planted trigrams "5 … 10 → 20" and "5 … 11 → 21", and
// the bug finder exactly their crossed pair. Head 1 has small random weights; every entry of
// both heads is held against the dense V×V circuits computed from the raw weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "analysis/circuit_weights.h"
#include "analysis/skip_trigrams.h"
#include "models/hooked_transformer.h"
#include "planted_model.h"
#include "tests/common/all_close.h"

namespace circuitlab::analysis {
namespace {

constexpr int64_t kV = 40;           // vocabulary = d_model = d_head (one-hot residual)
constexpr int64_t kSource = 5;       // the planted source token
constexpr int64_t kDestA = 10, kDestB = 11, kOutA = 20, kOutB = 21;
constexpr double kQkA = 3.0, kQkB = 2.0, kOvA = 3.0, kOvB = 2.0;
// Double-precision products of the same weights in another order.
constexpr double kRtol = 1e-10, kAtol = 1e-12;
// The planted values read back: the weights are float32 (A·√Dh and B rounded to 2^-24 relative).
constexpr double kPlantedRtol = 1e-6;

models::ModelConfig one_layer_config() {
  models::ModelConfig c = testing::planted_config();  // no LN, no biases, attention-only
  c.n_layers = 1;
  c.n_heads = 2;
  c.d_vocab = kV;
  c.d_model = kV;
  c.d_head = kV;
  c.n_ctx = 8;
  return c;
}

// W_E = I, W_pos = 0, W_U = I; head 0: W_Q·W_Kᵀ = A·√Dh (scores A after the 1/√Dh), W_V·W_O = B.
std::map<std::string, torch::Tensor> one_layer_state_dict() {
  const auto c = one_layer_config();
  torch::manual_seed(11);
  torch::Tensor A = torch::zeros({kV, kV}), B = torch::zeros({kV, kV});  // [dest, source], [source, out]
  A[kDestA][kSource] = kQkA;
  A[kDestB][kSource] = kQkB;
  B[kSource][kOutA] = kOvA;
  B[kSource][kOutB] = kOvB;
  torch::Tensor Q = torch::randn({2, kV, kV}) * 0.02, K = torch::randn({2, kV, kV}) * 0.02;
  torch::Tensor Vw = torch::randn({2, kV, kV}) * 0.02, O = torch::randn({2, kV, kV}) * 0.02;
  Q[0] = A * std::sqrt(static_cast<double>(c.d_head));
  K[0] = torch::eye(kV);
  Vw[0] = torch::eye(kV);
  O[0] = B;
  return {{"embed.W_E", torch::eye(kV)},
          {"pos_embed.W_pos", torch::zeros({c.n_ctx, kV})},
          {"unembed.W_U", torch::eye(kV)},
          {"blocks.0.attn.W_Q", Q},
          {"blocks.0.attn.W_K", K},
          {"blocks.0.attn.W_V", Vw},
          {"blocks.0.attn.W_O", O}};
}

// The dense circuits of head h from the raw weights, float64: QK [dest, source] ÷ √Dh and OV
// [source, out] with W_U centred over the vocabulary (the folding circuit_weights.h documents).
struct Dense {
  torch::Tensor qk, ov;
};
Dense dense_circuits(const std::map<std::string, torch::Tensor>& sd, int h) {
  auto d = [&](const std::string& k) { return sd.at(k).to(torch::kFloat64); };
  const torch::Tensor E = d("embed.W_E"), U = d("unembed.W_U");
  const torch::Tensor Uc = U - U.mean(/*dim=*/1, /*keepdim=*/true);
  const torch::Tensor Q = d("blocks.0.attn.W_Q")[h], K = d("blocks.0.attn.W_K")[h];
  const torch::Tensor Vw = d("blocks.0.attn.W_V")[h], O = d("blocks.0.attn.W_O")[h];
  return {E.mm(Q).mm(E.mm(K).t()) / std::sqrt(static_cast<double>(Q.size(1))), E.mm(Vw).mm(O).mm(Uc)};
}

std::vector<int64_t> ids_of(const std::vector<std::pair<int64_t, double>>& v) {
  std::vector<int64_t> out;
  for (const auto& p : v) out.push_back(p.first);
  return out;
}

TEST(PlantedSkipTrigrams, TableReadsBackThePlantedTrigramsAndMatchesDenseCircuits) {
  const auto cfg = one_layer_config();
  const auto sd = one_layer_state_dict();
  const CircuitWeights w = fold_circuit_weights(cfg, sd);
  const std::vector<int64_t> sources{kSource, 7, 30};
  const int top_k = 5;
  const auto heads = skip_trigrams(w, sources, top_k, /*excluded_ids=*/{});
  ASSERT_EQ(heads.size(), 2u);
  for (int h = 0; h < 2; ++h) {
    SCOPED_TRACE("head " + std::to_string(h));
    const Dense ref = dense_circuits(sd, h);
    ASSERT_EQ(heads[h].layer, 0);
    ASSERT_EQ(heads[h].head, h);
    ASSERT_EQ(heads[h].entries.size(), sources.size());
    for (size_t j = 0; j < sources.size(); ++j) {
      const auto& e = heads[h].entries[j];
      const int64_t s = sources[j];
      ASSERT_EQ(e.source, s);
      ASSERT_EQ(e.destinations.size(), size_t(top_k));
      ASSERT_EQ(e.outputs.size(), size_t(top_k));
      // Every value listed is the dense circuit's entry; the full rows agree with the per-source readers.
      for (const auto& [d, v] : e.destinations) EXPECT_NEAR(v, ref.qk[d][s].item<double>(), kAtol + kRtol * std::abs(v));
      for (const auto& [o, v] : e.outputs) EXPECT_NEAR(v, ref.ov[s][o].item<double>(), kAtol + kRtol * std::abs(v));
      EXPECT_TRUE(circuitlab::testing::all_close(torch::tensor(qk_destinations(w, 0, h, s), torch::kFloat64), ref.qk.select(1, s),
                                     kRtol, kAtol, "qk_destinations"));
      EXPECT_TRUE(circuitlab::testing::all_close(torch::tensor(ov_outputs(w, 0, h, s), torch::kFloat64), ref.ov[s], kRtol, kAtol,
                                     "ov_outputs"));
      // Descending, and nothing left out ranks above the last one listed.
      for (size_t k = 1; k < e.destinations.size(); ++k) EXPECT_GE(e.destinations[k - 1].second, e.destinations[k].second);
      for (size_t k = 1; k < e.outputs.size(); ++k) EXPECT_GE(e.outputs[k - 1].second, e.outputs[k].second);
      const auto dl = ids_of(e.destinations), ol = ids_of(e.outputs);
      for (int64_t t = 0; t < kV; ++t) {
        if (std::find(dl.begin(), dl.end(), t) == dl.end())
          EXPECT_LE(ref.qk[t][s].item<double>(), e.destinations.back().second + kAtol) << "destination " << t;
        if (std::find(ol.begin(), ol.end(), t) == ol.end())
          EXPECT_LE(ref.ov[s][t].item<double>(), e.outputs.back().second + kAtol) << "output " << t;
      }
    }
  }
  // The planted trigrams, exactly: 5 … 10 → 20 (3, 3) and 5 … 11 → 21 (2, 2); OV logits are
  // relative to the vocabulary mean (W_U centred), whose row mean is (3 + 2) / V.
  const auto& planted = heads[0].entries[0];
  EXPECT_EQ(planted.destinations[0].first, kDestA);
  EXPECT_EQ(planted.destinations[1].first, kDestB);
  EXPECT_NEAR(planted.destinations[0].second, kQkA, kPlantedRtol * kQkA);
  EXPECT_NEAR(planted.destinations[1].second, kQkB, kPlantedRtol * kQkB);
  EXPECT_EQ(planted.outputs[0].first, kOutA);
  EXPECT_EQ(planted.outputs[1].first, kOutB);
  const double mean = (kOvA + kOvB) / kV;
  EXPECT_NEAR(planted.outputs[0].second, kOvA - mean, kPlantedRtol * kOvA);
  EXPECT_NEAR(planted.outputs[1].second, kOvB - mean, kPlantedRtol * kOvB);
}

TEST(PlantedSkipTrigrams, TheModelBehavesAsTheTableSays) {
  // [5, 3, 10]: at the destination 10, head 0 attends to the source 5 and writes 20's logit.
  models::HookedTransformer model(one_layer_config());
  model->load_state_dict(one_layer_state_dict(), "planted skip-trigram model");
  model->eval();
  torch::NoGradGuard ng;
  const torch::Tensor logits = model->forward(torch::tensor({kSource, int64_t(3), kDestA}).unsqueeze(0));  // [1, 3, V]
  EXPECT_EQ(logits[0][2].argmax().item<int64_t>(), kOutA);
  const torch::Tensor other = model->forward(torch::tensor({int64_t(7), int64_t(3), kDestA}).unsqueeze(0));
  EXPECT_NE(other[0][2].argmax().item<int64_t>(), kOutA) << "without the source there is no trigram";
}

TEST(PlantedSkipTrigrams, BugFinderReportsExactlyThePlantedCrossedPair) {
  const auto cfg = one_layer_config();
  const CircuitWeights w = fold_circuit_weights(cfg, one_layer_state_dict());
  const auto heads = skip_trigrams(w, {kSource, 7, 30}, 5, {});
  // Corpus: after 10 comes 20 (never 21), after 11 comes 21 (never 20): both planted trigrams
  // are plausible, their crossed combinations 5 … 10 → 21 and 5 … 11 → 20 never happen.
  BigramCounts counts;
  counts.unigram.assign(kV, 0);
  counts.next[kDestA] = {{kOutA, 100}, {30, 1}};
  counts.next[kDestB] = {{kOutB, 100}, {31, 1}};
  counts.tokens_counted = 202;
  const auto bugs = skip_trigram_bugs(w, heads, counts);
  ASSERT_EQ(bugs.size(), 1u);
  const auto& b = bugs[0];
  EXPECT_EQ(b.layer, 0);
  EXPECT_EQ(b.head, 0);
  EXPECT_EQ(b.source, kSource);
  EXPECT_EQ(std::vector<int64_t>({b.dest_a, b.out_a, b.dest_b, b.out_b}), std::vector<int64_t>({kDestA, kOutA, kDestB, kOutB}));
  EXPECT_DOUBLE_EQ(b.prob_a, 100.0 / 101.0);
  EXPECT_DOUBLE_EQ(b.prob_b, 100.0 / 101.0);
  ASSERT_EQ(b.crossed.size(), 2u);
  const double mean = (kOvA + kOvB) / kV;
  EXPECT_EQ(std::make_pair(b.crossed[0].dest, b.crossed[0].out), std::make_pair(kDestA, kOutB));
  EXPECT_EQ(std::make_pair(b.crossed[1].dest, b.crossed[1].out), std::make_pair(kDestB, kOutA));
  EXPECT_EQ(b.crossed[0].prob, 0.0);
  EXPECT_NEAR(b.crossed[0].boost, kQkA * (kOvB - mean), 2 * kPlantedRtol * kQkA * kOvB);
  EXPECT_NEAR(b.crossed[1].boost, kQkB * (kOvA - mean), 2 * kPlantedRtol * kQkB * kOvA);
  // A corpus where the crossed trigram is common too: no bug.
  counts.next[kDestA][kOutB] = 50;
  counts.next[kDestB][kOutA] = 50;
  EXPECT_TRUE(skip_trigram_bugs(w, heads, counts).empty());
}

}  // namespace
}  // namespace circuitlab::analysis
