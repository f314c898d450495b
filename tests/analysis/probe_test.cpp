// Linear probes (analysis/probe.h, issue 18 item 3): a planted label that is a linear function
// of a random toy's resid_post is found (held-out ≥ 0.95, far above both baselines); the attn2l
// demo model's "token repeats an earlier token" probe at layer 1 beats both baselines (figures
// printed; skipped when runs/ lacks the model or data); `circuitlab probe train` end to end with
// its files read back and its bad inputs (one-line error, non-zero exit, nothing written).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/probe.h"
#include "core/error.h"
#include "core/file_io.h"
#include "models/hook_names.h"
#include "models/model_dir.h"
#include "models/run_to_hook.h"
#include "models/safetensors.h"
#include "tests/common/files.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::analysis {
namespace {

using namespace circuitlab::testing;
using torch::Tensor;

models::HookedTransformer tiny_toy(int d_vocab, int seed) {
  models::ModelConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_head = 8;
  c.n_ctx = 16;
  c.d_vocab = d_vocab;
  c.seed = seed;
  torch::manual_seed(seed);
  return models::HookedTransformer(c);
}

TEST(Probe, PlantedLinearLabelIsFound) {
  models::HookedTransformer m = tiny_toy(64, 3);
  torch::NoGradGuard ng;
  const int64_t B = 64, T = 16;
  const Tensor toks = torch::randint(0, 64, {B, T}, torch::kLong);
  const std::string hook = models::hooks::resid_post(1);
  const Tensor X = models::run_to_hook(m, toks, hook).reshape({B * T, -1});  // [N, D]
  // The label: which side of a random hyperplane through the median the activation lies on.
  const Tensor u = torch::randn({X.size(1)});
  const Tensor s = torch::matmul(X, u);
  const Tensor y = (s > s.median()).to(torch::kLong);
  ProbeData d{X, y, torch::arange(B, torch::kLong).repeat_interleave(T), {"0", "1"}};
  const ProbeResult r = train_probe(d, {});
  std::printf("planted: held-out %.4f, majority %.4f, random direction %.4f (n_test %lld)\n", r.test_acc,
              r.majority_acc, r.random_acc, static_cast<long long>(r.n_test));
  EXPECT_GE(r.test_acc, 0.95);
  EXPECT_GE(r.test_acc, r.majority_acc + 0.3);
  EXPECT_GE(r.test_acc, r.random_acc + 0.2);
  // The saved direction is the unit gradient of the logit difference in activation space: it
  // must point along the planted u.
  ASSERT_TRUE(r.direction.defined());
  EXPECT_NEAR(r.direction.norm().item<double>(), 1.0, 1e-5);
  const double cosine = (torch::dot(r.direction, u) / u.norm()).item<double>();
  std::printf("planted: cos(direction, u) = %.4f\n", cosine);
  EXPECT_GE(cosine, 0.8);
}

TEST(Probe, OneClassIsAnError) {
  ProbeData d{torch::randn({10, 4}), torch::zeros({10}, torch::kLong), torch::arange(10, torch::kLong), {"only"}};
  EXPECT_THROW(train_probe(d, {}), Error);
}

TEST(Probe, Attn2lRepeatTokenAtLayer1) {
  const std::string model_dir = source_dir() + "/runs/attn2l/model", data = source_dir() + "/runs/data/default/train.bin";
  if (!file_exists(model_dir + "/config.json") || !file_exists(data))
    GTEST_SKIP() << "runs/attn2l/model or runs/data/default/train.bin absent (the demo has not been run here)";
  models::LoadedModel lm = models::load_model_dir(model_dir);
  const data::TokenShard shard(data);
  const std::vector<std::string> hooks = {models::hooks::resid_post(1)};
  const auto rows = token_features(lm.model, shard, lm.vocab_map, "repeat", -1, 64, hooks);
  const ProbeResult r = train_probe(rows[0], {});
  const double pos_frac = r.counts[1] / static_cast<double>(r.counts[0] + r.counts[1]);
  std::printf("attn2l repeat-token probe at %s: held-out accuracy %.4f (train %.4f), majority baseline %.4f, "
              "random-direction baseline %.4f; %lld train / %lld held-out rows, %.1f%% repeats\n",
              hooks[0].c_str(), r.test_acc, r.train_acc, r.majority_acc, r.random_acc,
              static_cast<long long>(r.n_train), static_cast<long long>(r.n_test), 100 * pos_frac);
  EXPECT_GE(r.test_acc, r.majority_acc + 0.1);
  EXPECT_GE(r.test_acc, r.random_acc + 0.1);
}

// --- the CLI ---

struct CliFixture {
  TempDir tmp{"probe"};
  std::string model = tmp / "model";
  CliFixture() {
    models::HookedTransformer m = tiny_toy(50257, 5);
    models::save_model_dir(m, model);
  }
  RunResult probe(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {circuitlab_bin(), "probe", "train", "--model", model};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
  }
};

// Texts whose label is their last word: linearly readable from the last position's residual.
std::string word_lines(const std::vector<std::string>& words) {
  const std::vector<std::string> lead = {"the", "a", "my", "one", "this", "that", "his", "her"};
  std::string s;
  for (size_t i = 0; i < 48; ++i) {
    const std::string w = words[i % words.size()];
    s += nlohmann::json{{"text", lead[i % lead.size()] + " " + w}, {"label", w}}.dump() + "\n";
  }
  return s;
}

TEST(Probe, CliTrainsAndWritesFiles) {
  CliFixture f;
  spit(f.tmp / "two.jsonl", word_lines({" cat", " dog"}));
  RunResult r = f.probe({"--hook", "blocks.1.hook_resid_post", "--data", f.tmp / "two.jsonl", "--out", f.tmp / "p2"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  std::printf("%s", r.out.c_str());
  auto j = nlohmann::json::parse(slurp(f.tmp / "p2/probe.json"));
  EXPECT_EQ(j["hook"], "blocks.1.hook_resid_post");
  EXPECT_EQ(j["classes"], nlohmann::json::array({" cat", " dog"}));
  EXPECT_EQ(j["balance"][" cat"]["all"], 24);
  EXPECT_GE(j["test_accuracy"].get<double>(), 0.9);
  EXPECT_TRUE(j["baselines"].contains("majority") && j["baselines"].contains("random_direction"));
  auto t = models::load_safetensors(f.tmp / "p2/probe.safetensors");
  EXPECT_EQ(t.at("W").sizes(), torch::IntArrayRef({16, 2}));
  EXPECT_EQ(t.at("b").sizes(), torch::IntArrayRef({2}));
  EXPECT_EQ(t.at("mean").sizes(), torch::IntArrayRef({16}));
  ASSERT_TRUE(t.count("direction"));
  EXPECT_NEAR(t.at("direction").norm().item<double>(), 1.0, 1e-5);

  // Multi-class, int labels turned strings, a pattern across layers: one subdir per layer, no direction.
  spit(f.tmp / "three.jsonl", word_lines({" cat", " dog", " bird"}));
  r = f.probe({"--hook", "resid_post", "--data", f.tmp / "three.jsonl", "--position", "mean", "--out", f.tmp / "p3"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  std::printf("%s", r.out.c_str());
  for (int l = 0; l < 2; ++l) {
    const std::string dir = f.tmp / ("p3/blocks." + std::to_string(l) + ".hook_resid_post");
    auto tl = models::load_safetensors(dir + "/probe.safetensors");
    EXPECT_EQ(tl.at("W").sizes(), torch::IntArrayRef({16, 3}));
    EXPECT_FALSE(tl.count("direction"));
    EXPECT_EQ(nlohmann::json::parse(slurp(dir + "/probe.json"))["options"]["position"], "mean");
  }
  EXPECT_NE(r.out.find("blocks.1.hook_resid_post"), std::string::npos);
}

TEST(Probe, CliBadInputIsOneLineAndWritesNothing) {
  CliFixture f;
  spit(f.tmp / "ok.jsonl", word_lines({" cat", " dog"}));
  spit(f.tmp / "one.jsonl", word_lines({" cat"}));
  spit(f.tmp / "empty.jsonl", "");
  spit(f.tmp / "bad.jsonl", "{\"text\": \"a cat\", \"label\": \"x\"}\n{\"text\": 3, \"label\": \"y\"}\n");
  spit(f.tmp / "nolabel.jsonl", "{\"text\": \"a cat\", \"label\": \"x\"}\n{\"text\": \"a dog\"}\n");
  struct Case { std::vector<std::string> args; std::string expect; };
  const std::vector<Case> cases = {
      {{"--hook", "blocks.0.hook_nope", "--data", f.tmp / "ok.jsonl"}, "hook"},
      {{"--hook", "blocks.7.hook_resid_post", "--data", f.tmp / "ok.jsonl"}, "no hook point"},
      {{"--hook", "resid_post", "--data", f.tmp / "one.jsonl"}, "two classes"},
      {{"--hook", "resid_post", "--data", f.tmp / "empty.jsonl"}, "empty"},
      {{"--hook", "resid_post", "--data", f.tmp / "bad.jsonl"}, "line 2: field 'text'"},
      {{"--hook", "resid_post", "--data", f.tmp / "nolabel.jsonl"}, "line 2: field 'label'"},
      {{"--hook", "resid_post", "--data", f.tmp / "ok.jsonl", "--label", "colour"}, "unknown kind"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--out", f.tmp / "out"});
    const RunResult r = f.probe(args);
    EXPECT_NE(r.exit_code, 0) << c.expect;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(f.tmp / "out")) << c.expect << ": something was written";
  }
}

}  // namespace
}  // namespace circuitlab::analysis
