// Crash test (label slow): `circuitlab train` is killed with SIGKILL at random steps (twice per
// run, checkpoints every 3 steps so kills also land inside checkpoint writes), the newest
// checkpoint is checked to load completely, training resumes, and the final weights must be
// bit-identical to an uninterrupted run (one thread, CPU).
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "tests/train/train_test_util.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

extern char** environ;

namespace circuitlab::train {
namespace {

using namespace circuitlab::train::testing;
namespace fs = std::filesystem;

int64_t last_logged_step(const std::string& metrics) {
  std::ifstream in(metrics);
  std::string line;
  int64_t step = -1;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step")) step = j["step"].get<int64_t>();
  }
  return step;
}

pid_t spawn_train(const std::vector<std::string>& args) {
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  EXPECT_EQ(::posix_spawn(&pid, a[0].c_str(), nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

// The newest checkpoint must restore completely into a fresh model and optimizer.
void expect_newest_checkpoint_loads(const std::string& run_dir, const TrainConfig& c) {
  auto last = latest_checkpoint(run_dir + "/checkpoints");
  ASSERT_TRUE(last.has_value()) << "no checkpoint in " << run_dir;
  models::HookedTransformer m(c.model);
  auto ps = named_trainable_params(m, false);
  auto opt = make_adamw(ps, {});
  TrainerState s;
  ASSERT_NO_THROW(s = load_checkpoint(*last, m, *opt, torch::kCPU)) << *last;
  EXPECT_GT(s.step, 0);
  EXPECT_EQ(s.tokens, s.step * c.tokens_per_step());
}

TEST(CrashTest, KillNineTwiceResumeBitIdentical) {
  const TempDir data_dir("train-crash-data"), tmp("train-crash");
  write_data_dir(data_dir.path());
  const std::string& data = data_dir.path();
  TrainConfig c = tiny_config(2, 400);
  c.model.d_model = 64;
  c.model.n_ctx = 64;
  c.batch_size = 16;
  c.checkpoint_every = 3;
  c.keep_checkpoints = 2;
  c.span_repeat_prob = 0.3;
  c.span_repeat_min_len = 4;
  const std::string& dir = tmp.path();
  const std::string preset = dir + "/crash.json";
  write_file_atomic(preset, to_json(c).dump(2));
  auto args = [&](const std::string& out, bool resume) {
    std::vector<std::string> a = {circuitlab_bin(), "train", "--preset", preset, "--data", data, "--out", out, "--threads", "1", "--quiet"};
    if (resume) a.push_back("--resume");
    return a;
  };
  ASSERT_EQ(circuitlab::testing::run_program(args(dir + "/ref", false)).exit_code, 0);

  std::mt19937 rng(std::random_device{}());
  const std::string out = dir + "/crashed";
  bool resume = false;
  for (int kill_round = 0; kill_round < 2; ++kill_round) {
    const int64_t target = std::uniform_int_distribution<int64_t>(40 + 150 * kill_round, 150 + 150 * kill_round)(rng);
    pid_t pid = spawn_train(args(out, resume));
    auto t0 = std::chrono::steady_clock::now();
    while (last_logged_step(out + "/metrics.jsonl") < target) {
      int st;
      ASSERT_EQ(::waitpid(pid, &st, WNOHANG), 0) << "training ended before the kill at step " << target;
      ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::minutes(10));
      std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(200, 3000)(rng)));
    }
    ::kill(pid, SIGKILL);  // the process we spawned, by id
    int st;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFSIGNALED(st)) << "round " << kill_round;
    std::printf("killed at step ~%lld (round %d)\n", static_cast<long long>(target), kill_round);
    expect_newest_checkpoint_loads(out, c);
    resume = true;
  }
  ASSERT_EQ(circuitlab::testing::run_program(args(out, true)).exit_code, 0);
  auto a = weights(dir + "/ref/model"), b = weights(out + "/model");
  ASSERT_EQ(a.size(), b.size());
  for (auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k << " differs after kill -9 + resume";
}

}  // namespace
}  // namespace circuitlab::train
