// Direct logit attribution (analysis/dla.h) on make_fixtures.py's toys (attention-only with and
// without LN, shortformer, 0 layers, LN + MLP), GPT-2-layout checkpoints and a model of the
// mlp2l preset's shape: the components sum to the logit (difference) within 1e-4; each head's
// value equals the logit change when only that head's hook_result at p is removed from the
// final residual with the LayerNorm scale frozen, computed here from the cache and the weights;
// per-source values sum to the head's value. Then `circuitlab attribute` end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/dla.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "models/hook_names.h"
#include "models/model_dir.h"
#include "models/safetensors.h"
#include "tests/common/files.h"
#include "tests/models/test_util.h"

namespace circuitlab::analysis {
namespace {

using namespace circuitlab::testing;
using torch::Tensor;

// The acceptance tolerance: float32 forward, components projected in float64.
constexpr double kSumAtol = 1e-4;
// Head-removal check: both sides from the same float32 cache, projected in float64; 1e-4 of the
// logit's scale covers the float32 rounding of the cached residual.
constexpr double kHeadAtol = 1e-4, kHeadRtol = 1e-4;
// Per-source values recompose pattern·v·W_O in float64, the head's value projects the float32
// hook_result: the two differ by float32 rounding (seen up to 1.2e-7).
constexpr double kSourceAtol = 1e-5, kSourceRtol = 1e-5;

// The target's logit (difference) read off a final residual r [D] with the final LayerNorm's
// scale frozen at sigma: ((r − mean r)/σ ⊙ w + b)·u + b_U·(e_t − e_a). Written from the weights,
// not from analysis/dla.cpp.
double frozen_logit(models::HookedTransformer& m, const Tensor& r_in, double sigma, int64_t t, int64_t a) {
  auto sd = m->state_dict();
  Tensor r = r_in.to(torch::kDouble);
  Tensor W_U = m->W_U().detach().to(torch::kDouble), b_U = m->b_U().detach().to(torch::kDouble);
  Tensor x = r;
  if (m->cfg().has_ln()) {
    x = (r - r.mean()) / sigma * sd.at("ln_final.w").to(torch::kDouble);
    if (sd.count("ln_final.b")) x = x + sd.at("ln_final.b").to(torch::kDouble);
  }
  Tensor logits = torch::matmul(x, W_U) + b_U;  // [V_out]
  return logits[t].item<double>() - (a >= 0 ? logits[a].item<double>() : 0.0);
}

// Checks every property on one prompt, every position, one target and one (target, against) pair.
void check_model(models::HookedTransformer& m, const std::vector<int64_t>& toks, const std::string& what) {
  const auto& c = m->cfg();
  const int64_t T = static_cast<int64_t>(toks.size());
  const int64_t V = c.vocab_out();
  torch::NoGradGuard ng;
  auto [logits, cache] = models::run_with_cache(m, torch::tensor(toks, torch::kLong).unsqueeze(0));
  const std::string last = c.n_layers ? models::hooks::resid_post(c.n_layers - 1) : "";
  double worst_sum = 0, worst_head = 0;
  for (int64_t p = 0; p < T; ++p) {
    for (auto [t, a] : std::vector<std::pair<int64_t, int64_t>>{{(p * 7 + 3) % V, -1}, {(p * 5 + 1) % V, (p * 5 + 2) % V}}) {
      DlaOptions o;
      o.position = p;
      o.target = t;
      o.against = a;
      o.per_source = true;
      const DlaResult r = direct_logit_attribution(m, toks, o);
      const double logit = logits[0][p][t].item<double>() - (a >= 0 ? logits[0][p][a].item<double>() : 0.0);
      // Two forwards with different hooks active may take different (equal in exact arithmetic)
      // LayerNorm paths: float32 rounding apart.
      EXPECT_NEAR(r.logit, logit, kSumAtol) << what;
      EXPECT_NEAR(r.sum, logit, kSumAtol) << what << " p=" << p << " t=" << t << " a=" << a;
      worst_sum = std::max(worst_sum, std::abs(r.sum - logit));
      if (c.n_layers == 0) continue;
      const Tensor resid = cache.at(last)[0][p];
      const double sigma = c.has_ln() ? cache.at("ln_final.hook_scale")[0][p][0].item<double>() : 1.0;
      const double full = frozen_logit(m, resid, sigma, t, a);
      EXPECT_NEAR(full, logit, kSumAtol) << what << ": the frozen-LN logit of the cached residual";
      int heads = 0;
      for (const auto& k : r.components) {
        if (k.kind != DlaKind::Head) continue;
        ++heads;
        const Tensor hr = cache.at(models::hooks::result(k.layer))[0][p][k.head];
        const double expect = full - frozen_logit(m, resid - hr, sigma, t, a);
        EXPECT_NEAR(k.value, expect, kHeadAtol + kHeadRtol * std::abs(expect)) << what << " L" << k.layer << "H" << k.head;
        worst_head = std::max(worst_head, std::abs(k.value - expect));
        ASSERT_EQ(static_cast<int64_t>(k.by_source.size()), p + 1);
        double s = 0;
        for (double x : k.by_source) s += x;
        EXPECT_NEAR(s, k.value, kSourceAtol + kSourceRtol * std::abs(k.value)) << what << " per-source sum";
      }
      EXPECT_EQ(heads, c.n_layers * c.n_heads);
    }
  }
  std::printf("[dla] %-28s T=%lld worst |sum - logit| %.2e, worst |head - removal| %.2e\n", what.c_str(),
              static_cast<long long>(T), worst_sum, worst_head);
}

class DlaFixtures : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { dir_ = generate_fixtures(); }
  static std::string dir_;
};
std::string DlaFixtures::dir_;

TEST_P(DlaFixtures, SumsToLogitAndHeadsMatchRemoval) {
  const std::string fx = dir_ + "/" + GetParam();
  models::LoadedModel lm = models::load_model_dir(fx);
  const Tensor tokens = models::load_safetensors(fx + "/reference.safetensors").at("tokens")[0];
  std::vector<int64_t> toks(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
  check_model(lm.model, toks, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DlaFixtures,
                         ::testing::Values("toy_ln_standard", "toy_noln_standard", "toy_ln_shortformer",
                                           "toy_noln_shortformer_nobias", "toy_0l", "toy_mlp", "gpt2_hf",
                                           "gpt2_hf_prefixed"));

// A model of the mlp2l preset's shape (configs/mlp2l.json), every parameter random (non-zero
// biases and LayerNorm affine terms, which the default init leaves at 0 and 1).
TEST(Dla, Mlp2lShapeSumsToLogit) {
  auto j = nlohmann::json::parse(read_file(source_dir() + "/configs/mlp2l.json"));
  models::ModelConfig cfg = models::config_from_json(j.at("model"), "configs/mlp2l.json");
  ASSERT_FALSE(cfg.attn_only);
  ASSERT_TRUE(cfg.has_ln());
  torch::manual_seed(18);
  models::HookedTransformer m(cfg);
  {
    torch::NoGradGuard ng;
    for (auto& prm : m->parameters()) prm.add_(torch::randn_like(prm) * 0.1);
  }
  std::vector<int64_t> toks;
  for (int i = 0; i < 24; ++i) toks.push_back((i * 977 + 13) % cfg.d_vocab);
  check_model(m, toks, "mlp2l shape");
}

TEST(Dla, ComponentsListed) {
  const std::string dir = generate_fixtures();
  {
    models::LoadedModel lm = models::load_model_dir(dir + "/toy_mlp");
    const DlaResult r = direct_logit_attribution(lm.model, {1, 2, 3, 4}, DlaOptions{-1, 5, -1, false});
    EXPECT_EQ(r.position, 3);
    // embed, pos_embed, 2 × (4 heads, b_O, mlp), b_U, ln_final.b
    ASSERT_EQ(r.components.size(), 2u + 2u * 6u + 2u);
    EXPECT_EQ(r.components[0].kind, DlaKind::Embed);
    EXPECT_EQ(r.components[1].kind, DlaKind::PosEmbed);
    EXPECT_EQ(r.components[2].name, "blocks.0.attn.hook_result");
    EXPECT_EQ(r.components[6].name, "blocks.0.attn.b_O");
    EXPECT_EQ(r.components[7].kind, DlaKind::Mlp);
    EXPECT_EQ(r.components.back().name, "ln_final.b");
    EXPECT_GT(r.ln_scale, 0);
    for (const auto& k : r.components) EXPECT_TRUE(k.by_source.empty());
  }
  {
    models::LoadedModel lm = models::load_model_dir(dir + "/toy_noln_shortformer_nobias");
    const DlaResult r = direct_logit_attribution(lm.model, {1, 2, 3}, DlaOptions{1, 5, 6, false});
    EXPECT_FALSE(r.has_pos_embed);
    EXPECT_EQ(r.ln_scale, 0);
    // embed, 2 × 4 heads; no pos_embed (shortformer), no biases, no LayerNorm
    EXPECT_EQ(r.components.size(), 1u + 8u);
    for (const auto& k : r.components) EXPECT_NE(k.kind, DlaKind::PosEmbed);
  }
}

TEST(Dla, BadInputIsAnError) {
  models::LoadedModel lm = models::load_model_dir(generate_fixtures() + "/toy_ln_standard");
  EXPECT_THROW(direct_logit_attribution(lm.model, {}, DlaOptions{-1, 1, -1, false}), Error);
  EXPECT_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{2, 1, -1, false}), Error);
  EXPECT_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{-3, 1, -1, false}), Error);
  EXPECT_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{-1, 41, -1, false}), Error);
  EXPECT_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{-1, 1, 41, false}), Error);
  EXPECT_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{-1, 1, 1, false}), Error);
  EXPECT_NO_THROW(direct_logit_attribution(lm.model, {1, 2}, DlaOptions{-2, 40, 0, false}));
}

// `circuitlab attribute` end to end on the GPT-2-layout fixture (d_vocab 53, no vocab map).
class DlaCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = generate_fixtures(); }
  static std::string dir_;
  RunResult attribute(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {circuitlab_bin(), "attribute"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
  }
};
std::string DlaCli::dir_;

TEST_F(DlaCli, WritesJsonAndTable) {
  TempDir out("dla-cli");
  const std::string model = dir_ + "/gpt2_hf", file = out / "dla.json";
  const RunResult r = attribute({"--model", model, "--tokens", "3 14 15 9 26 5", "--no-prepend-bos", "--target", "7",
                                 "--against", "11", "--position", "4", "--per-position", "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_NE(r.out.find("sum of"), std::string::npos) << r.out;
  EXPECT_LE(count_lines(r.out), 30) << "one screen";
  EXPECT_EQ(list_dir(out.path()), std::vector<std::string>{"dla.json"}) << "no temp file left beside it";
  const auto j = nlohmann::json::parse(slurp(file));
  EXPECT_EQ(j.at("format"), "circuitlab-dla-v1");
  EXPECT_EQ(j.at("model_dir"), model);
  EXPECT_EQ(j.at("position"), 4);
  EXPECT_EQ(j.at("tokens").size(), 6u);
  EXPECT_EQ(j.at("tokens")[1].at("id"), 14);
  EXPECT_EQ(j.at("target").at("id"), 7);
  EXPECT_EQ(j.at("against").at("id"), 11);
  EXPECT_TRUE(j.at("against").contains("str"));
  EXPECT_TRUE(j.at("has_pos_embed").get<bool>());
  EXPECT_GT(j.at("ln_final_scale").get<double>(), 0);
  // The same numbers as the library, and the file's components sum to its total.
  models::LoadedModel lm = models::load_model_dir(model);
  const DlaResult lib = direct_logit_attribution(lm.model, {3, 14, 15, 9, 26, 5}, DlaOptions{4, 7, 11, true});
  EXPECT_NEAR(j.at("total").get<double>(), lib.logit, 1e-9);
  ASSERT_EQ(j.at("components").size(), lib.components.size());
  double sum = 0;
  int heads = 0;
  for (size_t i = 0; i < lib.components.size(); ++i) {
    const auto& c = j.at("components")[i];
    EXPECT_EQ(c.at("kind"), to_string(lib.components[i].kind));
    EXPECT_NEAR(c.at("value").get<double>(), lib.components[i].value, 1e-9);
    sum += c.at("value").get<double>();
    if (c.at("kind") == "head") {
      ++heads;
      EXPECT_TRUE(c.at("layer").is_number_integer() && c.at("head").is_number_integer());
      ASSERT_EQ(c.at("by_source").size(), 5u);
    } else {
      EXPECT_TRUE(c.at("head").is_null());
      EXPECT_FALSE(c.contains("by_source"));
    }
  }
  EXPECT_EQ(heads, 2 * 4);
  EXPECT_NEAR(sum, j.at("total").get<double>(), kSumAtol);
  EXPECT_EQ(j.at("components")[0].at("kind"), "embed");
  EXPECT_EQ(j.at("components")[1].at("kind"), "pos_embed");
}

TEST_F(DlaCli, BadInputIsOneLineAndWritesNothing) {
  TempDir out("dla-cli-bad");
  const std::string model = dir_ + "/gpt2_hf", file = out / "dla.json";
  const std::vector<std::vector<std::string>> cases = {
      {"--model", out / "no-such-model", "--tokens", "1 2", "--no-prepend-bos", "--target", "3"},
      {"--model", model, "--tokens", "1 2", "--no-prepend-bos", "--target", "53"},          // d_vocab 53
      {"--model", model, "--tokens", "1 2", "--no-prepend-bos", "--target", " Mary"},       // GPT-2 5335
      {"--model", model, "--tokens", "1 2", "--no-prepend-bos", "--target", "3", "--position", "2"},
      {"--model", model, "--tokens", "1 2", "--no-prepend-bos", "--target", "3", "--position", "-3"},
      {"--model", model, "--tokens", "1 2", "--text", "hi", "--no-prepend-bos", "--target", "3"},
      {"--model", model, "--tokens", "1 2", "--target", "3"},  // BOS 50256 outside d_vocab 53
      {"--model", model, "--tokens", "1 2", "--no-prepend-bos", "--target", "3", "--against", "3"},
  };
  for (auto args : cases) {
    args.push_back("--out");
    args.push_back(file);
    const RunResult r = attribute(args);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    EXPECT_NE(r.exit_code, 0) << cmd;
    EXPECT_EQ(count_lines(r.err), 1) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
    EXPECT_TRUE(list_dir(out.path()).empty()) << cmd << ": nothing written";
  }
}

// A compact-vocabulary model (vocab_map.json): --text and a one-token --target string go through
// the map; a token outside it is a one-line error.
TEST_F(DlaCli, CompactVocabularyTargetsThroughTheMap) {
  TempDir out("dla-cli-compact");
  const data::Tokenizer tok = data::Tokenizer::load_default();
  const std::vector<int32_t> mary = tok.encode(" Mary"), store = tok.encode(" store");
  ASSERT_EQ(mary.size(), 1u);
  ASSERT_EQ(store.size(), 1u);
  std::vector<int32_t> ids;  // 40 GPT-2 ids + "other" = the toy's d_vocab 41; " store" left out
  for (int32_t i = 0; ids.size() < 40; ++i)
    if (i + 100 != store[0] && i + 100 != mary[0]) ids.push_back(i + 100);
  ids[5] = mary[0];
  const data::VocabMap vmap(ids);
  models::LoadedModel lm = models::load_model_dir(dir_ + "/toy_ln_standard");
  models::save_model_dir(lm.model, out / "model", &vmap);
  const std::string file = out / "dla.json";
  RunResult r = attribute({"--model", out / "model", "--text", " Mary and Mary", "--target", " Mary", "--against",
                           "101", "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const auto j = nlohmann::json::parse(slurp(file));
  EXPECT_EQ(j.at("target").at("id"), 5);
  EXPECT_EQ(j.at("target").at("gpt2_id"), mary[0]);
  EXPECT_EQ(j.at("target").at("str"), " Mary");
  EXPECT_EQ(j.at("against").at("id"), 1);
  EXPECT_EQ(j.at("tokens").size(), 4u);  // BOS (the "other" id here) + 3
  EXPECT_EQ(j.at("tokens")[1].at("id"), 5);
  double sum = 0;
  for (const auto& c : j.at("components")) sum += c.at("value").get<double>();
  EXPECT_NEAR(sum, j.at("total").get<double>(), kSumAtol);
  std::filesystem::remove(file);
  r = attribute({"--model", out / "model", "--text", " Mary", "--target", " store", "--out", file});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("compact vocabulary"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(file));
}

}  // namespace
}  // namespace circuitlab::analysis
