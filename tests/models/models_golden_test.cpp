// Golden tests: every fixture of make_fixtures.py (toys: LN / no LN, standard / shortformer,
// 0 layers, MLP; GPT-2 in the exact Hugging Face layout, with and without 'transformer.')
// loaded through load_model_dir must reproduce the reference logits and cached activations of
// the independent numpy forward, two-sided at rtol 1e-4, atol 1e-5.
#include <gtest/gtest.h>

#include "models/model_dir.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

using circuitlab::testing::all_close;
using circuitlab::testing::kGoldenAtol;
using circuitlab::testing::kGoldenRtol;

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { dir_ = circuitlab::testing::generate_fixtures(); }
  static std::string dir_;
};
std::string Golden::dir_;

TEST_P(Golden, LogitsAndActivationsMatchReference) {
  const std::string fx = dir_ + "/" + GetParam();
  LoadedModel lm = load_model_dir(fx);
  auto ref = load_safetensors(fx + "/reference.safetensors");
  torch::NoGradGuard ng;
  auto [logits, cache] = run_with_cache(lm.model, ref.at("tokens"));
  EXPECT_TRUE(all_close(logits, ref.at("logits"), kGoldenRtol, kGoldenAtol, GetParam() + " logits"));
  int compared = 0;
  for (const auto& [name, expected] : ref) {
    if (name == "tokens" || name == "logits") continue;
    ASSERT_TRUE(cache.count(name)) << GetParam() << ": cache lacks '" << name << "'";
    EXPECT_TRUE(all_close(cache.at(name), expected, kGoldenRtol, kGoldenAtol, GetParam() + " " + name));
    ++compared;
  }
  EXPECT_GE(compared, 4) << "each fixture compares several activations";
  // The same logits without any hook or cache active (the fast path).
  torch::Tensor fast = lm.model->forward(ref.at("tokens"));
  EXPECT_TRUE(all_close(fast, ref.at("logits"), kGoldenRtol, kGoldenAtol, GetParam() + " logits (fast path)"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden,
                         ::testing::Values("toy_ln_standard", "toy_noln_standard", "toy_ln_shortformer",
                                           "toy_noln_shortformer_nobias", "toy_0l", "toy_mlp", "gpt2_hf",
                                           "gpt2_hf_prefixed"));

}  // namespace
}  // namespace circuitlab::models
