// `circuitlab sae train` end to end on a tiny toy model written by the test (compact vocabulary):
// one and several hooks (hook_z heads concatenated), metrics.jsonl, checkpoints, a bit-identical
// --resume, and bad inputs (unknown hook, k >= d_sae, zero tokens) failing with one line and
// nothing written.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/model_dir.h"
#include "models/sae.h"
#include "tests/common/files.h"
#include "tests/train/train_test_util.h"
#include "train/sae_activation_store.h"

namespace circuitlab::train {
namespace {

using namespace circuitlab::train::testing;
using circuitlab::testing::count_lines;
using circuitlab::testing::run_program;
using circuitlab::testing::RunResult;

class SaeTrainE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("sae-train");
    make_dirs(dir_->path() + "/data");
    write_data_dir(dir_->path() + "/data");
    TrainConfig c = tiny_config(2, 1);
    torch::manual_seed(1);
    models::HookedTransformer model(c.model);
    const auto counts = data::count_tokens(data::TokenShard(dir_->path() + "/data/train.bin"));
    const data::VocabMap vm = data::build_top_n_vocab(counts, c.model.d_vocab - 1);
    models::save_model_dir(model, dir_->path() + "/model", &vm);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string d() { return dir_->path(); }
  static RunResult sae_train(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> argv = {circuitlab_bin(), "sae", "train", "--model", d() + "/model", "--data",
                                     d() + "/data", "--out", out, "--d-sae", "64", "--k", "4", "--tokens", "8192",
                                     "--batch-tokens", "256", "--buffer-batches", "4", "--checkpoint-every", "8",
                                     "--quiet", "--seed", "3"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_program(argv);
  }
  static TempDir* dir_;
};
TempDir* SaeTrainE2E::dir_ = nullptr;

TEST_F(SaeTrainE2E, StoreHoldsTheModelsActivationsOfTheSampledWindows) {
  // The store stops each forward at its last hook point; its round must hold exactly the
  // activations run_with_cache gives on the same windows, in one permutation for all hooks.
  models::LoadedModel lm = models::load_model_dir(d() + "/model");
  auto shard = std::make_shared<const data::TokenShard>(d() + "/data/train.bin");
  ActivationStoreOptions so;
  so.hooks = {"blocks.0.hook_resid_post", "blocks.0.attn.hook_z"};
  so.context = 16;
  so.windows_per_forward = 4;
  so.batch_tokens = 32;
  so.round_batches = 4;  // 128 tokens = 2 forwards of 4 windows x 16
  so.seed = 9;
  ActivationStore store(lm.model, shard, lm.vocab_map, so);
  const std::vector<torch::Tensor> got = store.round(0);
  ASSERT_EQ(got[0].size(0), 128);
  data::BatchSampler sampler(shard, 4, 16, 9, lm.vocab_map);
  std::vector<torch::Tensor> a, z;
  torch::NoGradGuard ng;
  for (int f = 0; f < 2; ++f) {
    auto [x, y] = sampler.next();
    auto [logits, cache] = models::run_with_cache(lm.model, x);
    a.push_back(cache.at("blocks.0.hook_resid_post").reshape({-1, 32}));
    z.push_back(cache.at("blocks.0.attn.hook_z").reshape({-1, 32}));  // [B, T, H=2, Dh=16] -> H·Dh
  }
  const torch::Tensor ref_a = torch::cat(a), ref_z = torch::cat(z);
  // Same rows up to the permutation: order both sides by the resid rows' sums.
  const torch::Tensor o_ref = ref_a.sum(1).argsort(), o_got = got[0].sum(1).argsort();
  EXPECT_TRUE(all_close(got[0].index_select(0, o_got), ref_a.index_select(0, o_ref), 1e-6, 1e-6, "resid_post rows"));
  EXPECT_TRUE(all_close(got[1].index_select(0, o_got), ref_z.index_select(0, o_ref), 1e-6, 1e-6, "hook_z rows"));
  EXPECT_FALSE(torch::equal(got[0], ref_a));  // shuffled
  // The model is left without hooks: a plain forward still runs to the logits.
  EXPECT_EQ(lm.model->forward(torch::zeros({1, 4}, torch::kLong)).size(-1), 64);
}

TEST_F(SaeTrainE2E, TrainsOneSaePerHookFromOneForward) {
  const std::string out = d() + "/two";
  const RunResult r = sae_train(out, {"--hook", "blocks.1.hook_resid_post,blocks.0.attn.hook_z"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const models::SparseAutoencoder a = models::load_sae(out + "/blocks.1.hook_resid_post");
  const models::SparseAutoencoder z = models::load_sae(out + "/blocks.0.attn.hook_z");
  EXPECT_EQ(a.cfg.d_in, 32);
  EXPECT_EQ(z.cfg.d_in, 2 * 16);  // heads concatenated
  EXPECT_EQ(a.cfg.d_sae, 64);
  EXPECT_EQ(a.cfg.k, 4);
  EXPECT_EQ(a.cfg.architecture, models::SaeArchitecture::TopK);
  EXPECT_EQ(a.cfg.context_size, 32);
  EXPECT_FALSE(a.cfg.prepend_bos);
  ASSERT_TRUE(a.log10_density.defined());
  // 32 steps, logged every 10 and at the end, two hooks a row each.
  EXPECT_EQ(count_lines(read_file(out + "/metrics.jsonl")), 2 * 4);
  EXPECT_TRUE(file_exists(out + "/summary.json"));
  EXPECT_TRUE(is_directory(out + "/checkpoints/step_32"));
}

TEST_F(SaeTrainE2E, ResumeIsBitIdentical) {
  const std::string full = d() + "/full", split = d() + "/split";
  ASSERT_EQ(sae_train(full, {"--hook", "blocks.1.hook_resid_pre"}).exit_code, 0);
  const RunResult first = sae_train(split, {"--hook", "blocks.1.hook_resid_pre", "--stop-after", "13"});
  ASSERT_EQ(first.exit_code, 0) << first.output();
  EXPECT_FALSE(file_exists(split + "/sae_weights.safetensors"));
  const RunResult second = sae_train(split, {"--hook", "blocks.1.hook_resid_pre", "--resume"});
  ASSERT_EQ(second.exit_code, 0) << second.output();
  EXPECT_EQ(read_file(full + "/sae_weights.safetensors"), read_file(split + "/sae_weights.safetensors"));
  EXPECT_EQ(read_file(full + "/sparsity.safetensors"), read_file(split + "/sparsity.safetensors"));
  EXPECT_EQ(read_file(full + "/metrics.jsonl").size() > 0, true);
  EXPECT_EQ(count_lines(read_file(full + "/metrics.jsonl")), count_lines(read_file(split + "/metrics.jsonl")));
  // A resume that changes the run is refused.
  const RunResult changed = sae_train(split, {"--hook", "blocks.1.hook_resid_pre", "--resume", "--lr", "0.1"});
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.err.find("'lr'"), std::string::npos) << changed.err;
}

TEST_F(SaeTrainE2E, DataParallelTwoProcessesResumeBitIdentical) {
  // Two local ranks (Gloo on loopback), each forwarding half of every batch; all-reduced
  // gradients keep the ranks' SAEs equal, so rank 0's files describe the run; a stopped and
  // resumed 2-process run ends with the same bytes as an uninterrupted one.
  const std::string full = d() + "/dp_full", split = d() + "/dp_split";
  const RunResult a = sae_train(full, {"--hook", "blocks.1.hook_resid_pre", "--nproc", "2"});
  ASSERT_EQ(a.exit_code, 0) << a.output();
  const models::SparseAutoencoder s = models::load_sae(full);
  EXPECT_EQ(s.cfg.d_in, 32);
  EXPECT_EQ(count_lines(read_file(full + "/metrics.jsonl")), 4);
  ASSERT_EQ(sae_train(split, {"--hook", "blocks.1.hook_resid_pre", "--nproc", "2", "--stop-after", "9"}).exit_code, 0);
  const RunResult b = sae_train(split, {"--hook", "blocks.1.hook_resid_pre", "--nproc", "2", "--resume"});
  ASSERT_EQ(b.exit_code, 0) << b.output();
  EXPECT_EQ(read_file(full + "/sae_weights.safetensors"), read_file(split + "/sae_weights.safetensors"));
  // Not the single-process run: the ranks draw other windows (disjoint streams).
  const std::string single = d() + "/dp_single";
  ASSERT_EQ(sae_train(single, {"--hook", "blocks.1.hook_resid_pre"}).exit_code, 0);
  EXPECT_NE(read_file(full + "/sae_weights.safetensors"), read_file(single + "/sae_weights.safetensors"));
}

TEST_F(SaeTrainE2E, Gpt2DirectoryMlpHooksTrainAndEvaluate) {
  // A tiny GPT-2 in the exact Hugging Face layout (full vocabulary), MLP hook points, then eval.
  const std::string gpt2 = d() + "/gpt2", out = d() + "/gpt2_saes";
  const RunResult mk = run_program({circuitlab::testing::env_or("CIRCUITLAB_PYTHON", "/usr/bin/python3"),
                                    circuitlab::testing::source_dir() + "/tests/server/make_tiny_gpt2.py", gpt2});
  ASSERT_EQ(mk.exit_code, 0) << mk.output();
  const RunResult r = sae_train(out, {"--hook", "blocks.1.hook_mlp_out,blocks.0.mlp.hook_post", "--model", gpt2});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_EQ(models::load_sae(out + "/blocks.1.hook_mlp_out").cfg.d_in, 32);
  EXPECT_EQ(models::load_sae(out + "/blocks.0.mlp.hook_post").cfg.d_in, 4 * 32);
  const RunResult e = run_program({circuitlab_bin(), "sae", "eval", "--sae", out + "/blocks.1.hook_mlp_out", "--model",
                                   gpt2, "--data", d() + "/data", "--tokens", "512", "--out", out + "/eval.json"});
  ASSERT_EQ(e.exit_code, 0) << e.output();
  const auto j = nlohmann::json::parse(read_file(out + "/eval.json"));
  EXPECT_EQ(j.at("tokens").get<int64_t>(), 512);
  EXPECT_GT(j.at("explained_variance").get<double>(), 0.0);  // 32 steps of training already explain some
  EXPECT_NEAR(j.at("l0").get<double>(), 4.0, 1e-9);          // TopK, k = 4
}

TEST_F(SaeTrainE2E, EveryArchitectureTrains) {
  for (const char* arch : {"batchtopk", "jumprelu", "relu"}) {
    const std::string out = d() + "/arch_" + arch;
    const RunResult r = sae_train(out, {"--hook", "blocks.0.hook_resid_post", "--arch", arch, "--l1", "0.01"});
    ASSERT_EQ(r.exit_code, 0) << arch << ": " << r.output();
    const models::SparseAutoencoder s = models::load_sae(out);
    EXPECT_EQ(s.cfg.architecture, std::string(arch) == "relu" ? models::SaeArchitecture::Standard
                                                              : models::SaeArchitecture::JumpReLU);
    if (std::string(arch) == "batchtopk") {
      // Saved as JumpReLU with the learned global threshold (an EMA of the smallest selected
      // activation, folded with the normalisation into pre-activation units: unchanged).
      ASSERT_TRUE(s.threshold.defined());
      const float t0 = s.threshold[0].item<float>();
      EXPECT_GT(t0, 0.0f);
      EXPECT_TRUE(torch::equal(s.threshold, torch::full_like(s.threshold, t0)));
    }
    if (std::string(arch) == "jumprelu") {
      ASSERT_TRUE(s.threshold.defined());
      EXPECT_GT(s.threshold.min().item<float>(), 0.0f);
      // Trained per latent: the thresholds moved from their common initial value.
      EXPECT_GT((s.threshold - 0.001).abs().max().item<float>(), 1e-6);
    }
  }
}

TEST_F(SaeTrainE2E, BadInputsFailWithOneLineAndWriteNothing) {
  auto expect_error = [&](const std::string& name, std::vector<std::string> extra, const std::string& part) {
    const std::string out = d() + "/bad_" + name;
    const RunResult r = sae_train(out, extra);
    EXPECT_NE(r.exit_code, 0) << name;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << name << ": " << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << name << ": " << r.err;
    EXPECT_FALSE(file_exists(out)) << name << ": " << out << " was created";
  };
  expect_error("hook", {"--hook", "blocks.7.hook_resid_post"}, "unknown hook name 'blocks.7.hook_resid_post'");
  expect_error("k", {"--hook", "blocks.0.hook_resid_post", "--k", "64"}, "'k'");
  expect_error("tokens", {"--hook", "blocks.0.hook_resid_post", "--tokens", "0"}, "--tokens");
  expect_error("arch", {"--hook", "blocks.0.hook_resid_post", "--arch", "gated"}, "gated");
}

}  // namespace
}  // namespace circuitlab::train
