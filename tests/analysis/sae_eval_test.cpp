// `circuitlab sae eval` and `sae encode` against the same formulas in numpy
// (sae_numpy_reference.py: a toy model forwarded by tests/models/make_fixtures.py's reference,
// a TopK SAE written in SAELens's layout by hand): eval numbers within 1e-3, latents within 1e-4.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "models/safetensors.h"
#include "tests/common/all_close.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::analysis {
namespace {

using namespace circuitlab::testing;

// A float32 C-order .npy as written by apps/cli_io (format 1.0).
torch::Tensor read_npy_f32(const std::string& path) {
  const std::string b = read_file(path);
  EXPECT_EQ(b.compare(0, 6, "\x93NUMPY"), 0);
  const size_t hlen = static_cast<uint8_t>(b[8]) | (static_cast<size_t>(static_cast<uint8_t>(b[9])) << 8);
  const std::string header = b.substr(10, hlen);
  EXPECT_NE(header.find("'<f4'"), std::string::npos) << header;
  const size_t open = header.find("'shape': (") + 10, close = header.find(')', open);
  std::vector<int64_t> shape;
  std::string dims = header.substr(open, close - open);
  for (size_t p = 0; p < dims.size();) {
    const size_t c = dims.find(',', p);
    const std::string item = dims.substr(p, c == std::string::npos ? std::string::npos : c - p);
    if (!item.empty() && item != " ") shape.push_back(std::stoll(item));
    if (c == std::string::npos) break;
    p = c + 1;
  }
  torch::Tensor t = torch::empty(shape, torch::kFloat);
  EXPECT_EQ(b.size() - 10 - hlen, static_cast<size_t>(t.numel()) * 4);
  std::memcpy(t.data_ptr<float>(), b.data() + 10 + hlen, static_cast<size_t>(t.numel()) * 4);
  return t;
}

class SaeNumpyReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("sae-eval");
    const RunResult r = run_program({env_or("CIRCUITLAB_PYTHON", "/usr/bin/python3"),
                                     source_dir() + "/tests/analysis/sae_numpy_reference.py", dir_->path()});
    ASSERT_EQ(r.exit_code, 0) << r.output();
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* SaeNumpyReference::dir_ = nullptr;

TEST_F(SaeNumpyReference, EvalMatchesNumpyFormulas) {
  const std::string d = dir_->path();
  const RunResult r = run_program({circuitlab_bin(), "sae", "eval", "--sae", d + "/sae", "--model", d + "/model",
                                   "--data", d + "/val.bin", "--tokens", "55", "--out", d + "/eval.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const auto got = nlohmann::json::parse(read_file(d + "/eval.json"));
  const auto want = nlohmann::json::parse(read_file(d + "/expected.json"));
  EXPECT_EQ(got.at("tokens"), want.at("tokens"));
  for (auto it = want.begin(); it != want.end(); ++it) {
    ASSERT_TRUE(got.contains(it.key())) << it.key();
    // Issue 16 acceptance: within 1e-3 (float32 model and SAE vs float64 numpy).
    EXPECT_NEAR(got.at(it.key()).get<double>(), it.value().get<double>(), 1e-3) << it.key();
  }
}

TEST_F(SaeNumpyReference, EncodeMatchesNumpyFormulas) {
  const std::string d = dir_->path();
  const RunResult r = run_program({circuitlab_bin(), "sae", "encode", "--sae", d + "/sae", "--model", d + "/model",
                                   "--tokens", "3 5 7 9 11 2", "--no-prepend-bos", "--npy", d + "/acts.npy"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_NE(r.out.find("L0   4"), std::string::npos) << r.out;  // TopK k=4 per token
  const torch::Tensor got = read_npy_f32(d + "/acts.npy");
  const torch::Tensor want = models::load_safetensors(d + "/encode_expected.safetensors").at("feature_acts");
  EXPECT_TRUE(all_close(got, want, 0.0, 1e-4, "sae encode latents"));
}

TEST_F(SaeNumpyReference, BadInputsFailWithOneLine) {
  const std::string d = dir_->path();
  auto one_line_error = [](const RunResult& r, const std::string& part) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  };
  one_line_error(run_program({circuitlab_bin(), "sae", "eval", "--sae", d + "/sae", "--model", d + "/model", "--data",
                              d + "/val.bin", "--tokens", "0", "--out", d + "/zero.json"}),
                 "--tokens");
  EXPECT_FALSE(file_exists(d + "/zero.json"));
  // An SAE whose hook the model lacks.
  make_dirs(d + "/sae_bad_hook");
  write_file_atomic(d + "/sae_bad_hook/sae_weights.safetensors", read_file(d + "/sae/sae_weights.safetensors"));
  auto cfg = nlohmann::json::parse(read_file(d + "/sae/cfg.json"));
  cfg["metadata"]["hook_name"] = "blocks.5.hook_resid_post";
  write_file_atomic(d + "/sae_bad_hook/cfg.json", cfg.dump());
  one_line_error(run_program({circuitlab_bin(), "sae", "eval", "--sae", d + "/sae_bad_hook", "--model", d + "/model",
                              "--data", d + "/val.bin"}),
                 "blocks.5.hook_resid_post");
  // An SAE whose d_in does not match the hook's width.
  cfg = nlohmann::json::parse(read_file(d + "/sae/cfg.json"));
  cfg["metadata"]["hook_name"] = "blocks.1.mlp.hook_post";  // width 24, the SAE's d_in is 16
  make_dirs(d + "/sae_bad_din");
  write_file_atomic(d + "/sae_bad_din/sae_weights.safetensors", read_file(d + "/sae/sae_weights.safetensors"));
  write_file_atomic(d + "/sae_bad_din/cfg.json", cfg.dump());
  one_line_error(run_program({circuitlab_bin(), "sae", "encode", "--sae", d + "/sae_bad_din", "--model", d + "/model",
                              "--tokens", "3 5", "--no-prepend-bos", "--npy", d + "/bad.npy"}),
                 "d_in 16");
  EXPECT_FALSE(file_exists(d + "/bad.npy"));
  // BOS on a model that has no id for it.
  one_line_error(run_program({circuitlab_bin(), "sae", "encode", "--sae", d + "/sae", "--model", d + "/model",
                              "--tokens", "3 5"}),
                 "--no-prepend-bos");
}

}  // namespace
}  // namespace circuitlab::analysis
