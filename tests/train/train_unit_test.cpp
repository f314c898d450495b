// Unit tests of train/: schedule values, one AdamW step against a hand-computed step, TL-name
// parameter groups, presets and overrides, span repetition, loss falling on a tiny synthetic
// repeated-sequence task (1L and 2L, real trainer on real shards), exact in-process resume,
// and two Gloo processes on loopback against one process on the same global batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/error.h"
#include "core/file_io.h"
#include "data/batches.h"
#include "models/hooked_transformer.h"
#include "models/model_dir.h"
#include "tests/train/train_test_util.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/span_repeat.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "tests/common/paths.h"

namespace circuitlab::train {
namespace {

using namespace circuitlab::train::testing;
namespace fs = std::filesystem;

// Float32 arithmetic against a double reference of the same formula.
constexpr double kStepRtol = 1e-5, kStepAtol = 1e-7;
// Data parallel: a different summation order of the same gradients (issue: 1e-5 relative).
constexpr double kDpRtol = 1e-5, kDpAtol = 1e-6;

double val_loss(const std::string& model_dir, const std::string& data_dir, int64_t second_half_len = 0) {
  auto lm = models::load_model_dir(model_dir);
  torch::NoGradGuard ng;
  data::TokenShard val(data_dir + "/val.bin");
  const auto& vm = *lm.vocab_map;
  // Documents are [r(len), r(len), EOT]; score whole documents from their first token.
  const int64_t len = second_half_len > 0 ? second_half_len : 12, doc = 2 * len + 1;
  const int64_t n_docs = std::min<int64_t>(64, static_cast<int64_t>(val.size()) / doc);
  auto toks = torch::empty({n_docs, doc}, torch::kInt64);
  for (int64_t d = 0; d < n_docs; ++d)
    for (int64_t i = 0; i < doc; ++i) toks[d][i] = vm.to_compact(val[d * doc + i]);
  auto x = toks.slice(1, 0, doc - 1), y = toks.slice(1, 1, doc);
  auto logp = torch::log_softmax(lm.model->forward(x), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1);  // [n, doc-1]
  // second_half_len > 0: only predictions inside the second copy (positions len.. 2len-2).
  if (second_half_len > 0) logp = logp.slice(1, len, 2 * len - 1);
  return -logp.mean().item<double>();
}

TEST(LrSchedule, WarmupThenCosineToMin) {
  LrSchedule s{1e-3, 1e-4, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);          // (0+1)/10 of peak
  EXPECT_DOUBLE_EQ(s.at(4), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);          // end of warmup: peak
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);         // cosine starts at peak
  EXPECT_NEAR(s.at(59), 1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(M_PI * 49.0 / 99.0)), 1e-15);  // p = 49/99
  EXPECT_DOUBLE_EQ(s.at(109), 1e-4);        // last step: exactly min_lr
  EXPECT_DOUBLE_EQ(s.at(500), 1e-4);        // past the end: clamped
  for (int64_t i = 10; i < 109; ++i) EXPECT_GE(s.at(i), s.at(i + 1)) << "cosine must not increase at " << i;
  LrSchedule nowarm{2e-3, 0.0, 0, 3};
  EXPECT_DOUBLE_EQ(nowarm.at(0), 2e-3);
  EXPECT_DOUBLE_EQ(nowarm.at(1), 1e-3);     // midpoint of a 3-step cosine
  EXPECT_DOUBLE_EQ(nowarm.at(2), 0.0);
}

TEST(Snapshots, StepZeroPlusLogSpacedUpToTheEnd) {
  auto s = snapshot_steps(1000, 4);
  ASSERT_EQ(s, (std::vector<int64_t>{0, 1, 10, 100, 1000}));
  EXPECT_TRUE(snapshot_steps(1000, 0).empty());
  auto many = snapshot_steps(5, 10);  // duplicates collapse
  EXPECT_EQ(many, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
}

models::ModelConfig small_model() {
  models::ModelConfig c;
  c.n_layers = 1;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 6;
  c.d_vocab = 11;
  c.normalization_type = models::Normalization::LN;
  c.positional_embedding_type = "standard";
  c.seed = 3;
  return c;
}

TEST(AdamW, ParameterGroupsFollowTransformerLensNames) {
  models::HookedTransformer m(small_model());
  auto ps = named_trainable_params(m, /*decay_embeddings=*/false);
  std::map<std::string, bool> decay;
  for (auto& p : ps) decay[p.name] = p.decay;
  EXPECT_TRUE(decay.at("blocks.0.attn.W_Q"));
  EXPECT_TRUE(decay.at("blocks.0.attn.W_O"));
  EXPECT_TRUE(decay.at("unembed.W_U"));
  EXPECT_FALSE(decay.at("blocks.0.attn.b_Q"));
  EXPECT_FALSE(decay.at("blocks.0.ln1.w"));
  EXPECT_FALSE(decay.at("embed.W_E"));
  EXPECT_FALSE(decay.at("pos_embed.W_pos"));
  EXPECT_FALSE(decay.at("unembed.b_U"));
  auto with_emb = named_trainable_params(m, /*decay_embeddings=*/true);
  for (auto& p : with_emb)
    if (p.name == "embed.W_E" || p.name == "pos_embed.W_pos") EXPECT_TRUE(p.decay) << p.name;
  EXPECT_EQ(ps.size(), m->parameters().size());
}

TEST(AdamW, OneStepEqualsHandComputedStep) {
  models::HookedTransformer m(small_model());
  auto ps = named_trainable_params(m, false);
  AdamWSettings s{/*lr=*/0.01, /*weight_decay=*/0.1, /*beta1=*/0.9, /*beta2=*/0.95, /*eps=*/1e-8, false};
  auto opt = make_adamw(ps, s);
  torch::manual_seed(11);
  std::vector<torch::Tensor> before, grads;
  for (auto& p : ps) {
    before.push_back(p.param.detach().clone().to(torch::kFloat64));
    auto g = torch::randn(p.param.sizes());
    p.param.mutable_grad() = g.clone();
    grads.push_back(g.to(torch::kFloat64));
  }
  opt->step();
  for (size_t i = 0; i < ps.size(); ++i) {
    // Step 1: m = (1-b1) g, v = (1-b2) g^2, m_hat = g, v_hat = g^2;
    // p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps), wd only on decayed params.
    const double wd = ps[i].decay ? s.weight_decay : 0.0;
    auto m_hat = (1 - s.beta1) * grads[i] / (1 - s.beta1);
    auto v_hat = (1 - s.beta2) * grads[i] * grads[i] / (1 - s.beta2);
    auto want = before[i] * (1 - s.lr * wd) - s.lr * m_hat / (v_hat.sqrt() + s.eps);
    EXPECT_TRUE(all_close(ps[i].param, want, kStepRtol, kStepAtol)) << ps[i].name;
  }
}

TEST(Presets, EveryConfigParsesAndValidates) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(circuitlab::testing::source_dir() + "/configs")) {
    if (e.path().extension() != ".json") continue;
    auto j = load_preset_json(e.path().string());
    TrainConfig c = train_config_from_json(j, e.path().string());
    EXPECT_EQ(c.name, e.path().stem().string());
    ++n;
  }
  EXPECT_GE(n, 5);
  for (const char* name : {"attn0l", "attn1l", "attn2l", "mlp2l"}) EXPECT_NO_THROW(find_preset(name)) << name;
  auto mlp = train_config_from_json(load_preset_json("mlp2l"), "mlp2l");
  EXPECT_FALSE(mlp.model.attn_only);
}

TEST(Presets, OverridesAndUnknownFields) {
  auto j = to_json(tiny_config(2, 10));
  apply_overrides(j, {"steps=77", "model.d_model=48", "lr=0.5", "name=x"});
  auto c = train_config_from_json(j, "test");
  EXPECT_EQ(c.steps, 77);
  EXPECT_EQ(c.model.d_model, 48);
  EXPECT_DOUBLE_EQ(c.lr, 0.5);
  EXPECT_EQ(c.name, "x");
  EXPECT_THROW(apply_overrides(j, {"nokey"}), Error);
  EXPECT_THROW(apply_overrides(j, {"nosection.x=1"}), Error);
  auto bad = to_json(tiny_config(2, 10));
  bad["stepz"] = 3;
  try {
    train_config_from_json(bad, "preset.json");
    FAIL() << "unknown field accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stepz"), std::string::npos) << e.what();
  }
  auto neg = to_json(tiny_config(2, 10));
  neg["batch_size"] = 0;
  EXPECT_THROW(train_config_from_json(neg, "preset.json"), Error);
}

TEST(SpanRepeat, CopiesAnEarlierSpanDeterministically) {
  auto w = torch::arange(4 * 33, torch::kInt64).view({4, 33});
  auto w2 = w.clone();
  SpanRepeat r{1.0, 4, false, 9};
  EXPECT_EQ(r.apply(w, 100), 4);
  r.apply(w2, 100);
  EXPECT_TRUE(torch::equal(w, w2));  // pure function of (seed, index)
  for (int64_t b = 0; b < 4; ++b) {
    // Each row is arange with one span overwritten by a copy of an earlier span: find it.
    auto row = w[b];
    int64_t changed = (row != torch::arange(b * 33, (b + 1) * 33, torch::kInt64)).sum().item<int64_t>();
    EXPECT_GE(changed, 4);
    EXPECT_LE(changed, 16);
  }
  auto adj = torch::arange(33, torch::kInt64).view({1, 33});
  SpanRepeat a{1.0, 16, true, 1};  // len must be 16: copy [s, s+16) to [s+16, s+32)
  a.apply(adj, 0);
  int64_t s = -1;
  for (int64_t i = 0; i + 32 <= 33; ++i)
    if (torch::equal(adj[0].slice(0, i, i + 16), adj[0].slice(0, i + 16, i + 32))) s = i;
  EXPECT_GE(s, 0) << "adjacent copy not found";
  SpanRepeat off{0.0, 4, false, 1};
  auto z = torch::zeros({2, 10}, torch::kInt64);
  EXPECT_EQ(off.apply(z, 0), 0);
}

class TinyTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_tmp_ = new TempDir("train-unit-data");
    write_data_dir(data_tmp_->path());
    data_dir_ = &data_tmp_->path();
  }
  static void TearDownTestSuite() { delete data_tmp_; }
  static TempDir* data_tmp_;
  static const std::string* data_dir_;
};
TempDir* TinyTraining::data_tmp_ = nullptr;
const std::string* TinyTraining::data_dir_ = nullptr;

void expect_loss_falls(int layers, const std::string& data_dir) {
  TrainConfig c = tiny_config(layers, 300);
  RunOptions o;
  o.data_dir = data_dir;
  const TempDir out("train-falls" + std::to_string(layers));
  o.out_dir = out.path();
  o.progress = false;
  RunSummary s = run_training(c, o);
  EXPECT_EQ(s.steps, 300);
  const double before = val_loss(o.out_dir + "/snapshots/step_0", data_dir);
  const double after = val_loss(o.out_dir + "/model", data_dir);
  // Tokens are uniform over 48 ids: log(48) = 3.87 nats without context. A model that learns
  // anything gets well below it; one that copies from the first half (2L) gets far below.
  EXPECT_LT(after, before - 0.5) << layers << "L: val loss " << before << " -> " << after;
  EXPECT_LT(after, std::log(48.0)) << layers << "L";
  if (layers == 2) {
    const double second = val_loss(o.out_dir + "/model", data_dir, 12);
    // Without context no prediction beats log 48 = 3.87 nats; only copying from the first
    // copy (induction) gets the repeated half far below it.
    EXPECT_LT(second, 2.5) << "2L: loss on the repeated half " << second << " (log 48 = 3.87)";
  }
  // Run directory contract.
  for (const char* f : {"train_config.json", "metrics.jsonl", "summary.json", "model/config.json",
                        "model/model.safetensors", "model/vocab_map.json", "snapshots/step_0/config.json"})
    EXPECT_TRUE(file_exists(o.out_dir + "/" + f)) << f;
  std::ifstream m(o.out_dir + "/metrics.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(m, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k : {"step", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"})
      EXPECT_TRUE(j.contains(k)) << k;
    ++n;
  }
  EXPECT_EQ(n, 300 / 5);
  EXPECT_EQ(list_checkpoints(o.out_dir + "/checkpoints").size(), 2u);  // keep_checkpoints
}

TEST_F(TinyTraining, LossFallsOneLayer) { expect_loss_falls(1, *data_dir_); }
TEST_F(TinyTraining, LossFallsTwoLayersAndCopiesInContext) { expect_loss_falls(2, *data_dir_); }

TEST_F(TinyTraining, ResumeInProcessIsBitIdentical) {
  at::set_num_threads(1);
  TrainConfig c = tiny_config(2, 30);
  c.span_repeat_prob = 0.5;  // the option's choices must resume exactly too
  c.span_repeat_min_len = 4;
  RunOptions straight;
  straight.data_dir = *data_dir_;
  const TempDir straight_dir("train-straight"), part_dir("train-parts");
  straight.out_dir = straight_dir.path();
  straight.progress = false;
  run_training(c, straight);
  RunOptions part = straight;
  part.out_dir = part_dir.path();
  part.stop_after = 13;  // checkpoint at 10 (checkpoint_every) and at the stop
  run_training(c, part);
  part.stop_after = -1;
  part.resume = true;
  RunSummary s = run_training(c, part);
  EXPECT_EQ(s.steps, 30);
  auto a = weights(straight.out_dir + "/model"), b = weights(part.out_dir + "/model");
  ASSERT_EQ(a.size(), b.size());
  for (auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k << " differs after resume";
  // metrics.jsonl of the resumed run has each step once.
  std::ifstream m(part.out_dir + "/metrics.jsonl");
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(m, line)) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_LT(steps[i - 1], steps[i]);
}

// The trainer takes the hand-written attention-only path by default; the same run through
// autograd (RunOptions::fast_path = false) must log the same losses. Gradient accumulation on.
TEST_F(TinyTraining, TrainerFastPathMatchesAutogradRun) {
  constexpr double kLossRtol = 1e-3;  // fp32, 20 AdamW steps of drift between two summation orders
  at::set_num_threads(1);
  TrainConfig c = tiny_config(2, 20);
  c.grad_accum = 2;
  auto run = [&](bool fast) {
    RunOptions o;
    o.data_dir = *data_dir_;
    const TempDir out(fast ? "train-fastpath" : "train-autograd");
    o.out_dir = out.path();
    o.progress = false;
    o.fast_path = fast;
    RunSummary s = run_training(c, o);
    std::vector<double> losses;
    std::ifstream m(o.out_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(m, line)) losses.push_back(nlohmann::json::parse(line)["train_loss"].get<double>());
    losses.push_back(s.val_loss);
    return losses;
  };
  auto fast = run(true), slow = run(false);
  ASSERT_EQ(fast.size(), slow.size());
  ASSERT_GE(fast.size(), 4u);
  for (size_t i = 0; i < fast.size(); ++i)
    EXPECT_NEAR(fast[i], slow[i], kLossRtol * std::abs(slow[i])) << "logged loss " << i;
  EXPECT_LT(fast[fast.size() - 2], fast[0]);  // and it trains
}

TEST_F(TinyTraining, TwoGlooProcessesMatchOneProcess) {
  TrainConfig c = tiny_config(2, 20);
  c.batch_size = 8;
  c.checkpoint_every = 0;
  c.snapshots = 0;
  const TempDir tmp("train-dp");
  const std::string& dir = tmp.path();
  write_file_atomic(dir + "/tiny.json", to_json(c).dump(2));
  const std::string common = circuitlab_bin() + " train --preset " + dir + "/tiny.json --data " + *data_dir_ + " --threads 1 --quiet";
  ASSERT_EQ(run_shell(common + " --out " + dir + "/one").exit_code, 0);
  ASSERT_EQ(run_shell(common + " --out " + dir + "/two --nproc 2").exit_code, 0);
  auto one = weights(dir + "/one/model"), two = weights(dir + "/two/model");
  ASSERT_EQ(one.size(), two.size());
  // b_K is skipped: softmax is shift-invariant per query, so its true gradient is exactly 0
  // and Adam's g / sqrt(v) turns float rounding noise (which differs with the summation order)
  // into lr-sized steps. It cannot change any output; the logits check below covers it.
  for (auto& [k, t] : one)
    if (k.find("b_K") == std::string::npos) EXPECT_TRUE(all_close(two.at(k), t, kDpRtol, kDpAtol)) << k;
  {
    torch::NoGradGuard ng;
    auto m1 = models::load_model_dir(dir + "/one/model"), m2 = models::load_model_dir(dir + "/two/model");
    auto x = torch::randint(64, {4, 32}, torch::kInt64);
    EXPECT_TRUE(all_close(m2.model->forward(x), m1.model->forward(x), kDpRtol, 1e-5)) << "logits";
  }
  // Two ranks really ran: the run says so, and each rank drew its own windows. Rank r of W
  // draws rows (batch·W + r)·B/W + row of the one-process stream (data/batches.h): the two
  // ranks' windows of every step are disjoint and together are the one-process batch.
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/one/summary.json"))["world_size"], 1);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/two/summary.json"))["world_size"], 2);
  {
    auto shard = std::make_shared<const data::TokenShard>(*data_dir_ + "/train.bin");
    const int64_t T = c.model.n_ctx;
    data::BatchSampler whole(shard, c.batch_size, T, c.seed), r0(shard, c.batch_size / 2, T, c.seed, std::nullopt, 0, 2),
        r1(shard, c.batch_size / 2, T, c.seed, std::nullopt, 1, 2);
    for (uint64_t step = 0; step < static_cast<uint64_t>(c.steps); ++step) {
      auto a = r0.offsets(step), b = r1.offsets(step), w = whole.offsets(step);
      std::vector<uint64_t> both = a;
      both.insert(both.end(), b.begin(), b.end());
      EXPECT_EQ(both, w) << "step " << step << ": the ranks' windows are the one-process batch";
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      std::vector<uint64_t> shared;
      std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(shared));
      EXPECT_TRUE(shared.empty()) << "step " << step << ": ranks share window offset " << shared.front();
    }
  }
  // And the run really was distributed: a bad world size is refused with a one-line error.
  EXPECT_NE(run_shell(common + " --out " + dir + "/bad --world-size 2").exit_code, 0);
}

}  // namespace
}  // namespace circuitlab::train
