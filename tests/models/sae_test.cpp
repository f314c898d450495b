// models/sae: SAELens-layout directories written by an independent numpy writer
// (make_sae_fixtures.py) load and encode as the numpy formulas say; save/load round trips;
// the sparse decode equals the dense one; bad directories fail with one line naming the file.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "models/safetensors.h"
#include "models/sae.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

using circuitlab::testing::all_close;
using circuitlab::testing::python;
using circuitlab::testing::run_program;
using circuitlab::testing::source_dir;
using circuitlab::testing::TempDir;

const std::string& numpy_fixtures() {
  static const TempDir dir("sae-fixtures");
  static const bool made = [] {
    const auto r = run_program({python(), source_dir() + "/tests/models/make_sae_fixtures.py", dir.path()});
    if (r.exit_code != 0) throw std::runtime_error("make_sae_fixtures.py failed:\n" + r.output());
    return true;
  }();
  (void)made;
  return dir.path();
}

// The message of the circuitlab::Error `fn` throws ("" when it throws none).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void copy_dir(const std::string& from, const std::string& to) {
  make_dirs(to);
  for (const char* f : {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors"})
    write_file_atomic(to + "/" + f, read_file(from + "/" + f));
}

class SaeNumpyInterop : public ::testing::TestWithParam<std::string> {};

TEST_P(SaeNumpyInterop, EncodeAndDecodeMatchNumpyFormulas) {
  const std::string dir = numpy_fixtures() + "/" + GetParam();
  const SparseAutoencoder sae = load_sae(dir);
  EXPECT_EQ(sae.cfg.d_in, 12);
  EXPECT_EQ(sae.cfg.d_sae, 40);
  EXPECT_EQ(sae.cfg.hook_name, "blocks.0.hook_resid_post");
  EXPECT_EQ(sae.cfg.context_size, 16);
  EXPECT_TRUE(sae.cfg.prepend_bos);
  EXPECT_EQ(sae.cfg.hook_head_index, -1);
  ASSERT_TRUE(sae.log10_density.defined());
  EXPECT_EQ(sae.log10_density.size(0), 40);
  const auto expected = load_safetensors(dir + "/expected.safetensors");
  const torch::Tensor f = sae.encode(expected.at("x"));
  const torch::Tensor x_hat = sae.decode(f);
  // Max abs diff <= 1e-4 (issue 16 acceptance): float32 here vs float64 numpy.
  EXPECT_TRUE(all_close(f, expected.at("feature_acts"), 0.0, 1e-4, "feature_acts"));
  EXPECT_TRUE(all_close(x_hat, expected.at("sae_out"), 0.0, 1e-4, "sae_out"));
  const int64_t fired = (f > 0).sum().item<int64_t>();
  EXPECT_GT(fired, 0);
  if (GetParam() == "topk") {
    EXPECT_EQ(sae.cfg.architecture, SaeArchitecture::TopK);
    EXPECT_EQ(sae.cfg.k, 5);
    EXPECT_LE((f > 0).sum(1).max().item<int64_t>(), 5);
  }
  if (GetParam() == "standard") EXPECT_EQ(sae.cfg.architecture, SaeArchitecture::Standard);
  if (GetParam() == "jumprelu") EXPECT_EQ(sae.cfg.architecture, SaeArchitecture::JumpReLU);
}

INSTANTIATE_TEST_SUITE_P(Archs, SaeNumpyInterop, ::testing::Values("standard", "topk", "jumprelu"));

SparseAutoencoder random_sae(SaeArchitecture arch, int64_t d, int64_t s, int64_t k, uint64_t seed) {
  torch::manual_seed(seed);
  SaeConfig c;
  c.architecture = arch;
  c.d_in = d;
  c.d_sae = s;
  c.k = k;
  c.hook_name = "blocks.1.hook_resid_pre";
  c.model_name = "toy";
  c.context_size = 32;
  SparseAutoencoder sae(c);
  sae.W_enc = torch::randn({d, s});
  sae.W_dec = torch::randn({s, d});
  sae.b_enc = torch::randn({s}) * 0.1;
  sae.b_dec = torch::randn({d}) * 0.1;
  if (sae.threshold.defined()) sae.threshold = torch::rand({s}) * 0.5;
  sae.log10_density = torch::rand({s}) * -3;
  return sae;
}

TEST(Sae, SaveLoadRoundTripEveryArchitecture) {
  TempDir tmp("sae-roundtrip");
  for (auto arch : {SaeArchitecture::Standard, SaeArchitecture::TopK, SaeArchitecture::BatchTopK,
                    SaeArchitecture::JumpReLU}) {
    const SparseAutoencoder a = random_sae(arch, 8, 24, 3, 7);
    const std::string dir = tmp / sae_architecture_name(arch);
    save_sae(a, dir);
    const SparseAutoencoder b = load_sae(dir);
    // BatchTopK is saved as JumpReLU (its inference form), as SAELens does.
    EXPECT_EQ(b.cfg.architecture, arch == SaeArchitecture::BatchTopK ? SaeArchitecture::JumpReLU : arch);
    EXPECT_EQ(b.cfg.k, arch == SaeArchitecture::TopK ? 3 : 0);
    EXPECT_EQ(b.cfg.hook_name, a.cfg.hook_name);
    EXPECT_EQ(b.cfg.model_name, "toy");
    EXPECT_EQ(b.cfg.context_size, 32);
    EXPECT_TRUE(torch::equal(a.W_enc, b.W_enc));
    EXPECT_TRUE(torch::equal(a.W_dec, b.W_dec));
    EXPECT_TRUE(torch::equal(a.b_enc, b.b_enc));
    EXPECT_TRUE(torch::equal(a.b_dec, b.b_dec));
    EXPECT_TRUE(torch::equal(a.log10_density, b.log10_density));
    const torch::Tensor x = torch::randn({5, 8});
    EXPECT_TRUE(torch::equal(a.encode(x), b.encode(x)));
    // SAELens reads cfg.json's architecture and the metadata object.
    const auto j = nlohmann::json::parse(read_file(dir + "/cfg.json"));
    EXPECT_EQ(j.at("metadata").at("hook_name"), "blocks.1.hook_resid_pre");
    EXPECT_TRUE(j.at("metadata").at("hook_head_index").is_null());
    EXPECT_EQ(j.at("metadata").at("hook_layer"), 1);
    // >= 6.0 so that SAELens does not read it as a pre-6.0 flat config; only SAEMetadata's fields.
    EXPECT_EQ(j.at("metadata").at("sae_lens_version"), "6.0.0");
    const std::set<std::string> known = {"model_name", "hook_name", "model_class_name", "hook_layer",
                                         "hook_head_index", "model_from_pretrained_kwargs", "prepend_bos",
                                         "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice",
                                         "dataset_path", "sae_lens_version", "sae_lens_training_version"};
    for (auto it = j.at("metadata").begin(); it != j.at("metadata").end(); ++it)
      EXPECT_TRUE(known.count(it.key())) << "metadata key SAELens does not know: " << it.key();
    EXPECT_EQ(j.at("meta"), j.at("metadata"));
  }
}

TEST(Sae, SparseDecodeEqualsDense) {
  const SparseAutoencoder sae = random_sae(SaeArchitecture::TopK, 16, 64, 4, 3);
  const torch::Tensor x = torch::randn({10, 16});
  const torch::Tensor pre = sae.pre_activations(x);
  auto [vals, idx] = pre.topk(4, -1);
  const torch::Tensor sparse = sae_sparse_decode(idx, torch::relu(vals), sae.W_dec, sae.b_dec);
  EXPECT_TRUE(all_close(sparse, sae.decode(sae.encode(x)), 1e-5, 1e-5, "sparse vs dense decode"));
}

TEST(Sae, ArchitectureNonlinearities) {
  SparseAutoencoder sae = random_sae(SaeArchitecture::BatchTopK, 4, 6, 2, 5);
  const torch::Tensor pre = torch::tensor({{3.0f, -1.0f, 0.5f, 2.0f, 0.1f, 1.0f}, {0.2f, 0.3f, -2.0f, 0.0f, 0.4f, 5.0f}});
  // BatchTopK at train time: the k·N = 4 largest relu(pre) over the batch: 5, 3, 2, 1.
  const torch::Tensor bt = sae.activate_batch_topk(pre);
  EXPECT_TRUE(torch::equal(bt, torch::tensor({{3.0f, 0.f, 0.f, 2.0f, 0.f, 1.0f}, {0.f, 0.f, 0.f, 0.f, 0.f, 5.0f}})));
  sae.threshold = torch::full({6}, 0.35f);
  EXPECT_TRUE(torch::equal(sae.activate(pre), torch::tensor({{3.0f, 0.f, 0.5f, 2.0f, 0.f, 1.0f},
                                                             {0.f, 0.f, 0.f, 0.f, 0.4f, 5.0f}})));
  SparseAutoencoder topk = random_sae(SaeArchitecture::TopK, 4, 6, 2, 5);
  // TopK keeps the k largest pre-activations, then ReLU: row 2's second largest is 0.4.
  EXPECT_TRUE(torch::equal(topk.activate(-pre), torch::tensor({{0.f, 1.0f, 0.f, 0.f, 0.f, 0.f},
                                                               {0.f, 0.f, 2.0f, 0.f, 0.f, 0.f}})));
}

TEST(Sae, BadDirectoriesFailWithOneLine) {
  TempDir tmp("sae-bad");
  const std::string good = numpy_fixtures() + "/topk";
  auto expect_one_line = [](const std::string& msg, std::initializer_list<const char*> parts) {
    ASSERT_FALSE(msg.empty()) << "no error";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  {  // truncated weights
    const std::string d = tmp / "truncated";
    copy_dir(good, d);
    const std::string w = read_file(d + "/sae_weights.safetensors");
    write_file_atomic(d + "/sae_weights.safetensors", w.substr(0, w.size() - 100));
    expect_one_line(error_of([&] { load_sae(d); }), {"sae_weights.safetensors"});
  }
  {  // mislabelled: W_enc stored with its axes swapped, then as integers
    const std::string d = tmp / "mislabelled";
    copy_dir(good, d);
    auto w = load_safetensors(good + "/sae_weights.safetensors");
    w["W_enc"] = w["W_enc"].t().contiguous();
    save_safetensors(d + "/sae_weights.safetensors", w);
    expect_one_line(error_of([&] { load_sae(d); }), {"sae_weights.safetensors", "W_enc", "shape"});
    w["W_enc"] = w["W_enc"].t().contiguous().to(torch::kInt);
    save_safetensors(d + "/sae_weights.safetensors", w);
    expect_one_line(error_of([&] { load_sae(d); }), {"sae_weights.safetensors", "W_enc", "dtype"});
    w.erase("W_dec");
    w["W_enc"] = w["W_enc"].to(torch::kFloat);
    save_safetensors(d + "/sae_weights.safetensors", w);
    expect_one_line(error_of([&] { load_sae(d); }), {"W_dec", "missing"});
  }
  auto with_cfg = [&](const std::string& name, auto edit) {
    const std::string d = tmp / name;
    copy_dir(good, d);
    auto j = nlohmann::json::parse(read_file(d + "/cfg.json"));
    edit(j);
    write_file_atomic(d + "/cfg.json", j.dump());
    return error_of([&] { load_sae(d); });
  };
  expect_one_line(with_cfg("k_too_big", [](auto& j) { j["k"] = 40; }), {"cfg.json", "'k'", "[1, 40)"});
  expect_one_line(with_cfg("k_zero", [](auto& j) { j["k"] = 0; }), {"cfg.json", "'k'"});
  expect_one_line(with_cfg("d_in", [](auto& j) { j["d_in"] = 13; }), {"W_enc", "shape", "[13, 40]"});
  expect_one_line(with_cfg("arch", [](auto& j) { j["architecture"] = "gated"; }), {"cfg.json", "architecture", "gated"});
  expect_one_line(with_cfg("hook", [](auto& j) { j["metadata"]["hook_name"] = "blocks.0.hook_nope"; }),
                  {"cfg.json", "hook_name"});
  expect_one_line(error_of([&] { load_sae(tmp / "nowhere"); }), {"cfg.json"});
  // An activation whose size is not d_in.
  const SparseAutoencoder sae = load_sae(good);
  expect_one_line(error_of([&] { sae_input_from_hook(torch::zeros({2, 3, 11}), sae.cfg); }),
                  {"d_in 12", "blocks.0.hook_resid_post", "11"});
}

TEST(Sae, HookZHeadsConcatenatedOrOneHead) {
  SaeConfig c;
  c.architecture = SaeArchitecture::Standard;
  c.d_in = 6;
  c.d_sae = 4;
  c.hook_name = "blocks.0.attn.hook_z";
  const torch::Tensor z = torch::randn({2, 5, 2, 3});  // [B, T, H, Dh]
  const torch::Tensor flat = sae_input_from_hook(z, c);
  EXPECT_EQ(flat.sizes(), (std::vector<int64_t>{10, 6}));
  EXPECT_TRUE(torch::equal(flat[7], z[1][2].flatten()));
  EXPECT_TRUE(torch::equal(sae_output_to_hook(flat, z, c), z));
  c.d_in = 3;
  c.hook_head_index = 1;
  const torch::Tensor head = sae_input_from_hook(z, c);
  EXPECT_TRUE(torch::equal(head[7], z[1][2][1]));
  const torch::Tensor back = sae_output_to_hook(torch::zeros({10, 3}), z, c);
  EXPECT_TRUE(torch::equal(back.select(2, 0), z.select(2, 0)));
  EXPECT_EQ(back.select(2, 1).abs().sum().item<float>(), 0.0f);
}

}  // namespace
}  // namespace circuitlab::models
