// Attribution patching (analysis/atp.h). (1) On attention-only models without LayerNorm with the
// attention patterns frozen from the corrupted run the metric is linear in every target, so AtP
// must equal real activation patching (written here with run_with_hooks and the same frozen
// patterns) within 1e-4; with an MLP the last layer's mlp_out is linear too. (2) On the trained
// attn2l demo model (runs/attn2l/model, skipped when absent) AtP correlates ≥ 0.8 with
// analysis/patching.h on an induction prompt pair; random-weight toys give finite maps shaped as
// patching's. (3) Bad input names the field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>

#include "analysis/atp.h"
#include "analysis/patching.h"
#include "core/error.h"
#include "models/hook_names.h"
#include "models/model_dir.h"
#include "tests/common/paths.h"

namespace circuitlab::analysis {
namespace {

using torch::Tensor;

// Linear case: AtP and real patching are the same float32 sums in different orders; the
// logit differences are O(1), so 1e-4 absolute is float rounding with margin.
constexpr double kExactAtol = 1e-4;

models::HookedTransformer toy(bool attn_only, models::Normalization norm, int seed, int layers = 2) {
  models::ModelConfig c;
  c.n_layers = layers;
  c.d_model = 32;
  c.n_heads = 4;
  c.d_head = 8;
  c.n_ctx = 16;
  c.d_vocab = 50;
  c.d_mlp = 64;
  c.attn_only = attn_only;
  c.normalization_type = norm;
  c.seed = seed;
  c.initializer_range = 0.3;  // large enough that patches move the logits by O(1)
  torch::manual_seed(seed);
  return models::HookedTransformer(c);
}

Tensor random_tokens(int64_t T, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(T);
  for (auto& x : ids) x = static_cast<int64_t>(rng() % V);
  return torch::tensor(ids, torch::kLong).view({1, T});
}

double metric(const Tensor& logits, int64_t correct, int64_t incorrect) {  // [1,T,V]
  auto last = logits[0][-1];
  return (last[correct] - last[incorrect]).item<double>();
}

// Real patching of one cell: the clean activation of `name` copied into the corrupted run at
// position `pos` (all when < 0) and head `head` (hook_z only; all when < 0).
double patch_one(models::HookedTransformer& m, const Tensor& corrupt, const Tensor& clean_act, const std::string& name,
                 int64_t pos, int64_t head, const models::ForwardOptions& fwd, int64_t a, int64_t b) {
  torch::NoGradGuard ng;
  auto logits = models::run_with_hooks(m, corrupt, {{name, [&](const Tensor& act, const std::string&) {
                                                       auto out = act.clone();
                                                       auto dst = out[0], src = clean_act[0];
                                                       if (pos >= 0) { dst = dst[pos]; src = src[pos]; }
                                                       if (head >= 0) { dst = dst.select(-2, head); src = src.select(-2, head); }
                                                       dst.copy_(src);
                                                       return std::optional<Tensor>(out);
                                                     }}},
                                       fwd);
  return metric(logits, a, b);
}

// Max |AtP − real| over a [rows, T] map of a per-layer hook, every position.
double worst_layer_map(models::HookedTransformer& m, const AtpMap& atp,
                       const std::function<std::string(int)>& hook, const models::ActivationCache& clean_cache,
                       const Tensor& corrupt, const models::ForwardOptions& fwd, int64_t a, int64_t b, int first_layer) {
  double worst = 0;
  const int L = m->cfg().n_layers;
  const int64_t T = corrupt.size(1);
  for (int l = first_layer; l < L; ++l)
    for (int64_t p = 0; p < T; ++p) {
      const double real = patch_one(m, corrupt, clean_cache.at(hook(l)), hook(l), p, -1, fwd, a, b);
      worst = std::max(worst, std::abs(real - atp.patched_logit_diff[l][p].item<double>()));
    }
  return worst;
}

struct LinearSetup {
  Tensor clean, corrupt;
  models::ForwardOptions fwd;  // frozen patterns of the corrupted run
  models::ActivationCache clean_cache;
  AtpResult atp;
};

LinearSetup linear_setup(models::HookedTransformer& m, int64_t a, int64_t b) {
  LinearSetup s;
  const int64_t T = 8, V = m->cfg().d_vocab;
  s.clean = random_tokens(T, V, 11);
  s.corrupt = random_tokens(T, V, 12);
  torch::NoGradGuard ng;
  auto [lc, cc] = models::run_with_cache(m, s.corrupt);
  for (int l = 0; l < m->cfg().n_layers; ++l) s.fwd.frozen_patterns.push_back(cc.at(models::hooks::pattern(l)));
  s.clean_cache = models::run_with_cache(m, s.clean).second;
  AtpOptions opts;
  opts.corrupt_forward = s.fwd;
  s.atp = attribution_patching(m, s.clean, s.corrupt, a, b, opts);
  return s;
}

TEST(AtpLinear, EqualsRealPatchingWithFrozenPatternsNoLn) {
  auto m = toy(/*attn_only=*/true, models::Normalization::None, 3);
  const int64_t a = 7, b = 21;
  auto s = linear_setup(m, a, b);
  const auto& c = m->cfg();
  const int64_t T = s.clean.size(1);
  {
    torch::NoGradGuard ng;
    ASSERT_NEAR(s.atp.corrupt_logit_diff, metric(m->forward(s.corrupt, s.fwd), a, b), 1e-5);
  }
  ASSERT_GT(std::abs(s.atp.clean_logit_diff - s.atp.corrupt_logit_diff), 0.1) << "the pair must differ";
  auto rp = [](int l) { return models::hooks::resid_pre(l); };
  auto ao = [](int l) { return models::hooks::attn_out(l); };
  const double w_resid = worst_layer_map(m, s.atp.resid_pre, rp, s.clean_cache, s.corrupt, s.fwd, a, b, 0);
  const double w_attn = worst_layer_map(m, s.atp.attn_out, ao, s.clean_cache, s.corrupt, s.fwd, a, b, 0);
  double w_head_pos = 0, w_head = 0, spread = 0;
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      const std::string z = models::hooks::z(l);
      for (int64_t p = 0; p < T; ++p) {
        const double real = patch_one(m, s.corrupt, s.clean_cache.at(z), z, p, h, s.fwd, a, b);
        const double est = s.atp.head_pos.patched_logit_diff[l * c.n_heads + h][p].item<double>();
        w_head_pos = std::max(w_head_pos, std::abs(real - est));
        spread = std::max(spread, std::abs(real - s.atp.corrupt_logit_diff));
      }
      const double real_all = patch_one(m, s.corrupt, s.clean_cache.at(z), z, -1, h, s.fwd, a, b);
      w_head = std::max(w_head, std::abs(real_all - s.atp.head.patched_logit_diff[l][h].item<double>()));
    }
  std::printf("linear toy: worst |AtP - patching| resid_pre %.2e attn_out %.2e head_pos %.2e head %.2e "
              "(largest single-cell effect %.3f)\n", w_resid, w_attn, w_head_pos, w_head, spread);
  EXPECT_LE(w_resid, kExactAtol);
  EXPECT_LE(w_attn, kExactAtol);
  EXPECT_LE(w_head_pos, kExactAtol);
  EXPECT_LE(w_head, kExactAtol);
  EXPECT_GT(spread, 0.05) << "patches must move the metric for the check to mean anything";
  // Patching's units: recovery = (patched − corrupt)/(clean − corrupt).
  auto rec = (s.atp.head_pos.patched_logit_diff - s.atp.corrupt_logit_diff) /
             (s.atp.clean_logit_diff - s.atp.corrupt_logit_diff);
  EXPECT_TRUE(torch::allclose(rec, s.atp.head_pos.recovery, 1e-5, 1e-6));
}

TEST(AtpLinear, LastMlpOutEqualsRealPatchingNoLn) {
  auto m = toy(/*attn_only=*/false, models::Normalization::None, 5);
  const int64_t a = 3, b = 40;
  auto s = linear_setup(m, a, b);
  auto mo = [](int l) { return models::hooks::mlp_out(l); };
  ASSERT_TRUE(s.atp.mlp_out.attribution.defined());
  // Only the last MLP's output is followed by linear maps alone (earlier ones feed a GELU).
  const double w = worst_layer_map(m, s.atp.mlp_out, mo, s.clean_cache, s.corrupt, s.fwd, a, b,
                                   m->cfg().n_layers - 1);
  std::printf("mlp toy: worst |AtP - patching| last mlp_out %.2e\n", w);
  EXPECT_LE(w, kExactAtol);
}

// Pearson of AtP with patching.h's result for one target, printed with the worst cells.
double report_correlation(models::HookedTransformer& m, const Tensor& clean, const Tensor& corrupt, int64_t a,
                          int64_t b, const AtpResult& atp, PatchTarget t) {
  auto real = activation_patching(m, clean, corrupt, a, b, t);
  auto cmp = compare_atp_with_patching(atp.at(t), real, 3);
  std::printf("attn2l %-9s: Pearson(AtP, patching) = %.4f over %lld cells; worst:", to_string(t).c_str(), cmp.pearson,
              static_cast<long long>(cmp.cells));
  for (const auto& d : cmp.worst)
    std::printf(" [%lld,%lld] atp %.3f real %.3f;", static_cast<long long>(d.row), static_cast<long long>(d.col), d.atp,
                d.real);
  std::printf("\n");
  return cmp.pearson;
}

TEST(AtpTrained, CorrelatesWithPatchingOnAttn2lInduction) {
  const std::string dir = testing::source_dir() + "/runs/attn2l/model";
  if (!std::filesystem::exists(dir + "/config.json"))
    GTEST_SKIP() << dir << " absent: train the demo (circuitlab demo / train attn2l) to run this check";
  auto loaded = models::load_model_dir(dir);
  auto& m = loaded.model;
  // Induction pair: random tokens A, repeated up to A[k]; clean's first half has A[k+1] after
  // A[k], corrupt's has B there. Clean predicts A[k+1], corrupt B.
  const int64_t V = m->cfg().d_vocab, n = 24, k = 12;
  const int64_t bos = loaded.vocab_map ? loaded.vocab_map->to_compact(static_cast<int32_t>(models::kGpt2Bos)) : 0;
  auto rand = random_tokens(n + 1, V - 1, 2024);  // below the compact "other" id
  std::vector<int64_t> clean_ids{bos};
  for (int64_t i = 0; i < n; ++i) clean_ids.push_back(rand[0][i].item<int64_t>());
  for (int64_t i = 0; i <= k; ++i) clean_ids.push_back(rand[0][i].item<int64_t>());
  auto corrupt_ids = clean_ids;
  const int64_t correct = clean_ids[1 + k + 1], incorrect = rand[0][n].item<int64_t>();
  ASSERT_NE(correct, incorrect);
  corrupt_ids[1 + k + 1] = incorrect;
  auto clean = torch::tensor(clean_ids, torch::kLong).view({1, -1});
  auto corrupt = torch::tensor(corrupt_ids, torch::kLong).view({1, -1});
  auto atp = attribution_patching(m, clean, corrupt, correct, incorrect);
  std::printf("attn2l induction: clean logit diff %.3f, corrupt %.3f\n", atp.clean_logit_diff, atp.corrupt_logit_diff);
  ASSERT_GT(atp.clean_logit_diff - atp.corrupt_logit_diff, 1.0) << "the model must do induction on this pair";
  const double r_head_pos = report_correlation(m, clean, corrupt, correct, incorrect, atp, PatchTarget::HeadPos);
  const double r_head = report_correlation(m, clean, corrupt, correct, incorrect, atp, PatchTarget::Head);
  const double r_resid = report_correlation(m, clean, corrupt, correct, incorrect, atp, PatchTarget::ResidPre);
  const double r_attn = report_correlation(m, clean, corrupt, correct, incorrect, atp, PatchTarget::AttnOut);
  EXPECT_GE(r_head_pos, 0.8);
  EXPECT_GE(r_head, 0.8);
  EXPECT_GE(r_resid, 0.8);
  EXPECT_GE(r_attn, 0.8);
}

void expect_shapes_like_patching(models::HookedTransformer& m, const AtpResult& atp, const Tensor& clean,
                                 const Tensor& corrupt) {
  for (auto t : {PatchTarget::ResidPre, PatchTarget::AttnOut, PatchTarget::Head, PatchTarget::HeadPos}) {
    auto real = activation_patching(m, clean, corrupt, 1, 2, t);
    const auto& map = atp.at(t);
    for (const Tensor& x : {map.attribution, map.patched_logit_diff, map.recovery}) {
      EXPECT_EQ(x.sizes(), real.patched_logit_diff.sizes()) << to_string(t);
      EXPECT_TRUE(torch::isfinite(x).all().item<bool>()) << to_string(t);
    }
    auto self = compare_atp_with_patching(map, real, 2);
    EXPECT_EQ(self.cells, real.patched_logit_diff.numel());
    EXPECT_EQ(self.worst.size(), 2u);
  }
}

TEST(AtpRandom, FiniteAndShapedLikePatching) {
  for (bool attn_only : {true, false}) {
    auto m = toy(attn_only, models::Normalization::LN, 9, /*layers=*/3);
    const auto& c = m->cfg();
    auto clean = random_tokens(10, c.d_vocab, 1), corrupt = random_tokens(10, c.d_vocab, 2);
    auto atp = attribution_patching(m, clean, corrupt, 1, 2);
    expect_shapes_like_patching(m, atp, clean, corrupt);
    EXPECT_EQ(atp.head_pos.attribution.sizes(), (std::vector<int64_t>{c.n_layers * c.n_heads, 10}));
    if (attn_only) {
      EXPECT_FALSE(atp.mlp_out.attribution.defined());
    } else {
      ASSERT_TRUE(atp.mlp_out.attribution.defined());
      EXPECT_EQ(atp.mlp_out.attribution.sizes(), (std::vector<int64_t>{c.n_layers, 10}));
      EXPECT_TRUE(torch::isfinite(atp.mlp_out.patched_logit_diff).all().item<bool>());
    }
  }
}

TEST(AtpCompare, PearsonOfAMapWithItselfIsOne) {
  AtpMap atp;
  atp.patched_logit_diff = torch::tensor({1.0f, 2.0f, 4.0f, 3.0f}).view({2, 2});
  PatchResult real;
  real.patched_logit_diff = torch::tensor({1.0f, 2.0f, 4.0f, 0.0f}).view({2, 2});
  auto same = compare_atp_with_patching(atp, PatchResult{0, 0, atp.patched_logit_diff, {}}, 1);
  EXPECT_NEAR(same.pearson, 1.0, 1e-12);
  auto cmp = compare_atp_with_patching(atp, real, 1);
  ASSERT_EQ(cmp.worst.size(), 1u);
  EXPECT_EQ(cmp.worst[0].row, 1);
  EXPECT_EQ(cmp.worst[0].col, 1);
  EXPECT_DOUBLE_EQ(cmp.worst[0].atp, 3.0);
  EXPECT_DOUBLE_EQ(cmp.worst[0].real, 0.0);
}

// Expects an Error whose message contains `field`.
template <class F>
void expect_error_naming(F&& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "expected an Error naming " << field;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(AtpBadInput, NamesTheField) {
  auto m = toy(true, models::Normalization::LN, 1);
  const int64_t V = m->cfg().d_vocab;
  auto clean = random_tokens(6, V, 1), corrupt = random_tokens(6, V, 2);
  expect_error_naming([&] { attribution_patching(m, clean, random_tokens(5, V, 2), 1, 2); }, "same number of tokens");
  auto bad = corrupt.clone();
  bad[0][3] = V;
  expect_error_naming([&] { attribution_patching(m, clean, bad, 1, 2); }, "corrupt token id 50");
  bad = clean.clone();
  bad[0][0] = -1;
  expect_error_naming([&] { attribution_patching(m, bad, corrupt, 1, 2); }, "clean token id -1");
  expect_error_naming([&] { attribution_patching(m, clean, corrupt, V, 2); }, "correct id 50");
  expect_error_naming([&] { attribution_patching(m, clean, corrupt, 1, -3); }, "incorrect id -3");
  expect_error_naming([&] { attribution_patching(m, clean.view({-1}), corrupt, 1, 2); }, "clean must be");
}

}  // namespace
}  // namespace circuitlab::analysis
