// Slow: loading a GPT-2-small-sized Hugging Face checkpoint (random weights, 548 MB with the
// attn.bias mask buffers, as the real file) peaks below 1.3x the file size in RSS, because the
// file is memory-mapped and its pages are released as tensors are copied out. The load runs
// in a fresh child process (this binary re-run with --gtest_filter=LoadRss.Child), which
// reports its own VmHWM.
#include <gtest/gtest.h>

#include <fstream>

#include "core/file_io.h"
#include "models/model_dir.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

int64_t status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  return -1;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

// Writes GPT-2 small (12 layers, 768 wide, 50257 vocab, 1024 positions) in the HF layout.
void write_gpt2_small(const std::string& dir) {
  const int64_t L = 12, D = 768, V = 50257, P = 1024;
  std::map<std::string, torch::Tensor> t;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto r = [&](std::vector<int64_t> s) { return torch::randn(s, gen) * 0.02; };
  t["wte.weight"] = r({V, D});
  t["wpe.weight"] = r({P, D});
  for (int64_t l = 0; l < L; ++l) {
    std::string h = "h." + std::to_string(l) + ".";
    t[h + "ln_1.weight"] = torch::ones({D});
    t[h + "ln_1.bias"] = torch::zeros({D});
    t[h + "attn.bias"] = torch::ones({P, P}).tril().view({1, 1, P, P});
    t[h + "attn.c_attn.weight"] = r({D, 3 * D});
    t[h + "attn.c_attn.bias"] = torch::zeros({3 * D});
    t[h + "attn.c_proj.weight"] = r({D, D});
    t[h + "attn.c_proj.bias"] = torch::zeros({D});
    t[h + "ln_2.weight"] = torch::ones({D});
    t[h + "ln_2.bias"] = torch::zeros({D});
    t[h + "mlp.c_fc.weight"] = r({D, 4 * D});
    t[h + "mlp.c_fc.bias"] = torch::zeros({4 * D});
    t[h + "mlp.c_proj.weight"] = r({4 * D, D});
    t[h + "mlp.c_proj.bias"] = torch::zeros({D});
  }
  t["ln_f.weight"] = torch::ones({D});
  t["ln_f.bias"] = torch::zeros({D});
  make_dirs(dir);
  save_safetensors(dir + "/model.safetensors", t);
  write_file_atomic(dir + "/config.json",
                    R"({"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024,)"
                    R"( "vocab_size": 50257, "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new"})");
}

TEST(LoadRss, Child) {
  const char* dir = std::getenv("CIRCUITLAB_RSS_DIR");
  if (!dir) GTEST_SKIP() << "run by LoadRss.PeakBelow1_3xFileSize";
  const int64_t base = status_kb("VmRSS");
  LoadedModel lm = load_model_dir(dir);
  std::printf("RSS_BASE_KB %lld\nRSS_PEAK_KB %lld\nPARAMS %lld\n", static_cast<long long>(base),
              static_cast<long long>(status_kb("VmHWM")), static_cast<long long>(lm.model->num_parameters()));
}

TEST(LoadRss, PeakBelow1_3xFileSize) {
  const circuitlab::testing::TempDir dir_tmp("gpt2small");
  std::string dir = dir_tmp / "gpt2";
  write_gpt2_small(dir);
  const double file_mb = SafetensorsFile::open(dir + "/model.safetensors").file_size() / 1e6;
  std::string out;
  int rc = circuitlab::testing::run_shell(
      "CIRCUITLAB_RSS_DIR=" + dir + " " + self_exe() + " --gtest_filter=LoadRss.Child", &out);
  ASSERT_EQ(rc, 0) << out;
  auto grab = [&](const std::string& key) {
    auto p = out.find(key + " ");
    EXPECT_NE(p, std::string::npos) << out;
    return p == std::string::npos ? -1.0 : std::stod(out.substr(p + key.size() + 1)) / 1e3 * 1.024;  // kB -> MB
  };
  const double base_mb = grab("RSS_BASE_KB"), peak_mb = grab("RSS_PEAK_KB");
  std::printf("file %.1f MB, process RSS before load %.1f MB, peak %.1f MB = %.3fx file size\n", file_mb, base_mb,
              peak_mb, peak_mb / file_mb);
  EXPECT_LT(peak_mb, 1.3 * file_mb) << "peak RSS (whole process) must stay below 1.3x the checkpoint size";
  std::remove((dir + "/model.safetensors").c_str());
}

}  // namespace
}  // namespace circuitlab::models
