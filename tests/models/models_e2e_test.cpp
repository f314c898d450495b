// End-to-end tests of the model subcommands through the real `circuitlab` binary
// ($CIRCUITLAB_BIN): forward (.npy equals the in-process forward, top-5 printed), inspect,
// export, one-line errors with exit code != 0 for bad inputs, and fetch-gpt2 against a
// loopback HTTP server serving a generated checkpoint under the hub's paths (incl. resume).
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/file_io.h"
#include "models/model_dir.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

using circuitlab::testing::all_close;
using circuitlab::testing::run_shell;

std::string bin() { return circuitlab::testing::circuitlab_bin(); }

// Reads a float32 .npy written by `circuitlab forward` (format 1.0, C order).
torch::Tensor read_npy_f32(const std::string& path) {
  std::string s = read_file(path);
  EXPECT_EQ(s.substr(0, 6), std::string("\x93NUMPY", 6));
  uint16_t hl = static_cast<uint8_t>(s[8]) | (static_cast<uint8_t>(s[9]) << 8);
  std::string header = s.substr(10, hl);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_EQ((10 + hl) % 64, 0);
  auto lp = header.find('('), rp = header.find(')');
  std::vector<int64_t> shape;
  std::string dims = header.substr(lp + 1, rp - lp - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    std::string d = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (d.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(d));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  torch::Tensor t = torch::empty(shape, torch::kFloat);
  EXPECT_EQ(s.size() - 10 - hl, static_cast<size_t>(t.numel()) * 4);
  std::memcpy(t.data_ptr(), s.data() + 10 + hl, t.numel() * 4);
  return t;
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = circuitlab::testing::generate_fixtures(); }
  static std::string fx_;
};
std::string Cli::fx_;

TEST_F(Cli, ForwardWritesLogitsNpyEqualToInProcessForward) {
  const circuitlab::testing::TempDir tmp_dir("cli");
  std::string tmp = tmp_dir.path();
  for (const std::string name : {"toy_ln_shortformer", "gpt2_hf_prefixed"}) {
    std::string out;
    std::string cmd = bin() + " forward --model " + fx_ + "/" + name + " --tokens \"3 1 4 1 5 9 2 6\" --no-prepend-bos --npy " +
                      tmp + "/" + name + ".npy --threads 1";
    ASSERT_EQ(run_shell(cmd, &out), 0) << out;
    EXPECT_NE(out.find("top-5 next tokens"), std::string::npos) << out;
    EXPECT_NE(out.find("5. "), std::string::npos) << out;
    torch::Tensor logits = read_npy_f32(tmp + "/" + name + ".npy");
    LoadedModel lm = load_model_dir(fx_ + "/" + name);
    torch::NoGradGuard ng;
    torch::Tensor expected = lm.model->forward(torch::tensor(std::vector<int64_t>{3, 1, 4, 1, 5, 9, 2, 6}).unsqueeze(0))[0];
    EXPECT_TRUE(all_close(logits, expected, 1e-6, 1e-7, name + " CLI logits"));
  }
}

TEST_F(Cli, InspectAndExport) {
  std::string out;
  ASSERT_EQ(run_shell(bin() + " inspect --model " + fx_ + "/gpt2_hf", &out), 0) << out;
  EXPECT_NE(out.find("family: gpt2"), std::string::npos) << out;
  EXPECT_NE(out.find("blocks.1.mlp.W_out"), std::string::npos) << out;
  LoadedModel lm = load_model_dir(fx_ + "/gpt2_hf");
  EXPECT_NE(out.find("parameters: " + std::to_string(lm.model->num_parameters())), std::string::npos) << out;
  const circuitlab::testing::TempDir tmp_dir("export-cli");
  std::string tmp = tmp_dir.path();
  ASSERT_EQ(run_shell(bin() + " export --model " + fx_ + "/gpt2_hf --out " + tmp + "/tl", &out), 0) << out;
  LoadedModel tl = load_model_dir(tmp + "/tl");
  EXPECT_EQ(tl.model->cfg().family, ModelFamily::Toy);
  EXPECT_FALSE(tl.model->cfg().attn_only);
  torch::NoGradGuard ng;
  torch::Tensor tokens = torch::arange(0, 9).unsqueeze(0);
  EXPECT_TRUE(all_close(tl.model->forward(tokens), lm.model->forward(tokens), 1e-6, 1e-6, "GPT-2 exported to TL layout"));
}

void expect_cli_error(const std::string& args, const std::vector<std::string>& parts) {
  std::string out;
  int rc = run_shell(bin() + " " + args, &out);
  EXPECT_NE(rc, 0) << args << "\n" << out;
  // One line on stderr: "circuitlab: error: ..." (nothing else printed before it).
  auto pos = out.find("circuitlab: error: ");
  ASSERT_NE(pos, std::string::npos) << out;
  std::string line = out.substr(pos);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << out;
  for (const auto& p : parts) EXPECT_NE(line.find(p), std::string::npos) << "mentions '" << p << "': " << line;
}

TEST_F(Cli, BadInputsExitNonZeroWithOneLine) {
  std::string m = fx_ + "/toy_ln_standard";
  expect_cli_error("forward --model " + m + " --tokens \"1 2 3 4 5 6 7 8 9 10 11 12 13\" --no-prepend-bos", {"n_ctx (12)"});
  expect_cli_error("forward --model " + m + " --tokens \"1 2 x\"", {"--tokens", "'x'"});
  expect_cli_error("forward --model " + m + " --tokens \"1 2 3\"", {"50256", "d_vocab 41"});  // BOS not in a toy vocab
  expect_cli_error("forward --model /nonexistent/model --tokens 1", {"/nonexistent/model"});
  // Truncated weights file.
  const circuitlab::testing::TempDir tmp_dir("cli-bad");
  std::string tmp = tmp_dir.path();
  std::string cut = tmp + "/cut";
  make_dirs(cut);
  write_file_atomic(cut + "/config.json", read_file(m + "/config.json"));
  std::string bytes = read_file(m + "/model.safetensors");
  write_file_atomic(cut + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_cli_error("inspect --model " + cut, {cut + "/model.safetensors", "truncated"});
  // GPT-2 weights with a tensor missing.
  std::string miss = tmp + "/miss";
  make_dirs(miss);
  write_file_atomic(miss + "/config.json", read_file(fx_ + "/gpt2_hf/config.json"));
  auto sd = load_safetensors(fx_ + "/gpt2_hf/model.safetensors");
  sd.erase("h.1.mlp.c_fc.bias");
  save_safetensors(miss + "/model.safetensors", sd);
  expect_cli_error("inspect --model " + miss, {"missing tensor 'h.1.mlp.c_fc.bias'"});
}

// Loopback "hub": <root>/<name>/resolve/main/<file>, recording Range headers.
struct LocalHub {
  httplib::Server svr;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::vector<std::string> ranges;
  explicit LocalHub(const std::string& root) {
    svr.set_mount_point("/", root);
    svr.set_logger([this](const httplib::Request& req, const httplib::Response&) {
      std::lock_guard<std::mutex> lock(mu);
      if (req.has_header("Range")) ranges.push_back(req.path + " " + req.get_header_value("Range"));
    });
    port = svr.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { svr.listen_after_bind(); });
    for (int i = 0; i < 500 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~LocalHub() {
    svr.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

TEST_F(Cli, FetchGpt2FromLoopbackHubIsCompleteAndResumable) {
  const circuitlab::testing::TempDir root_tmp("hub");
  std::string root = root_tmp.path();
  std::string files = root + "/gpt2/resolve/main";
  make_dirs(files);
  const std::string tok = circuitlab::testing::source_dir() + "/assets/tokenizer";
  std::map<std::string, std::string> src = {{"config.json", fx_ + "/gpt2_hf/config.json"},
                                            {"model.safetensors", fx_ + "/gpt2_hf/model.safetensors"},
                                            {"vocab.json", tok + "/encoder.json"},
                                            {"merges.txt", tok + "/vocab.bpe"}};
  for (const auto& [f, p] : src) write_file_atomic(files + "/" + f, read_file(p));
  LocalHub hub(root);
  ASSERT_GT(hub.port, 0);
  const circuitlab::testing::TempDir out_dir_tmp("fetched");
  std::string out_dir = out_dir_tmp / "gpt2";
  std::string out;
  ASSERT_EQ(run_shell(bin() + " fetch-gpt2 gpt2 --base-url " + hub.url() + " --out " + out_dir, &out), 0) << out;
  for (const auto& [f, p] : src) EXPECT_EQ(read_file(out_dir + "/" + f), read_file(p)) << f;
  LoadedModel lm = load_model_dir(out_dir);
  EXPECT_EQ(lm.model->cfg().family, ModelFamily::Gpt2);
  // The HF tokenizer files come along: --text works with the fetched dir's tokenizer.
  ASSERT_EQ(run_shell(bin() + " forward --model " + out_dir + " --tokens \"1 2 3\" --no-prepend-bos", &out), 0) << out;

  // Resume: half a .part file is completed with a Range request, not restarted.
  const circuitlab::testing::TempDir resumed_tmp("resumed");
  std::string resumed = resumed_tmp / "gpt2";
  make_dirs(resumed);
  std::string full = read_file(src["model.safetensors"]);
  write_file_atomic(resumed + "/model.safetensors.part", full.substr(0, full.size() / 2));
  ASSERT_EQ(run_shell(bin() + " fetch-gpt2 gpt2 --base-url " + hub.url() + " --out " + resumed, &out), 0) << out;
  EXPECT_EQ(read_file(resumed + "/model.safetensors"), full);
  EXPECT_FALSE(file_exists(resumed + "/model.safetensors.part"));
  {
    std::lock_guard<std::mutex> lock(hub.mu);
    bool saw = false;
    for (const auto& r : hub.ranges)
      saw = saw || r == "/gpt2/resolve/main/model.safetensors bytes=" + std::to_string(full.size() / 2) + "-";
    EXPECT_TRUE(saw) << "expected a Range request continuing at byte " << full.size() / 2;
  }
  // Unknown names and missing files are errors with exit != 0.
  expect_cli_error("fetch-gpt2 gpt3 --base-url " + hub.url() + " --out " + resumed, {"unknown model 'gpt3'"});
  expect_cli_error("fetch-gpt2 gpt2-medium --base-url " + hub.url() + " --out " + resumed + "-m", {"gpt2-medium/resolve/main/config.json", "404"});
}

}  // namespace
}  // namespace circuitlab::models
