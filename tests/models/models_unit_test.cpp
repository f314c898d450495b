// Unit tests of models/: hook list, hooks and cache semantics (replace-with-cached is a no-op,
// zeroing one head's hook_z removes exactly that head's term), padding, frozen patterns,
// parameter names/init, safetensors round trips and every bad input of issue 3, export ->
// import bit-identical against a literal TransformerLens name/shape list.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "models/model_dir.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

using circuitlab::testing::all_close;

// Hooked vs fast path run different but equivalent kernels; the models of these tests run
// in float64 so that only reassociation error (~1e-15 relative) separates the paths.
constexpr double kPathRtol = 1e-10;
constexpr double kPathAtol = 1e-12;

// A toy in float64 (see kPathRtol).
HookedTransformer make_f64(const ModelConfig& c) {
  HookedTransformer m(c);
  m->to(torch::kDouble);
  return m;
}

ModelConfig toy_cfg(int layers, bool ln, const std::string& pos = "standard", bool attn_only = true) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 16;
  c.n_heads = 4;
  c.d_head = 5;
  c.n_ctx = 12;
  c.d_vocab = 41;
  c.normalization_type = ln ? Normalization::LN : Normalization::None;
  c.positional_embedding_type = pos;
  c.attn_only = attn_only;
  c.d_mlp = attn_only ? -1 : 24;
  c.seed = 7;
  c.initializer_range = 0.5;  // large enough that attention is far from uniform
  return c;
}

torch::Tensor some_tokens(int64_t B, int64_t T, int64_t V, int seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(V, {B, T}, gen, torch::kLong);
}

// ------------------------------------------------------------------------------ hook list
TEST(HookList, AttnOnlyWithLnEqualsDocumentedList) {
  HookedTransformer m(toy_cfg(1, true));
  std::vector<std::string> expected = {
      "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale",
      "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
      "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
      "blocks.0.attn.hook_result", "blocks.0.hook_attn_out", "blocks.0.hook_resid_post", "ln_final.hook_scale",
      "ln_final.hook_normalized"};
  EXPECT_EQ(m->hook_names(), expected);
}

TEST(HookList, NoLnZeroLayersEqualsDocumentedList) {
  HookedTransformer m(toy_cfg(0, false));
  EXPECT_EQ(m->hook_names(), (std::vector<std::string>{"hook_embed", "hook_pos_embed"}));
}

TEST(HookList, MlpBlockEqualsDocumentedList) {
  HookedTransformer m(toy_cfg(1, true, "standard", /*attn_only=*/false));
  std::vector<std::string> expected = {
      "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale",
      "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
      "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
      "blocks.0.attn.hook_result", "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.ln2.hook_scale",
      "blocks.0.ln2.hook_normalized", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
      "blocks.0.hook_resid_post", "ln_final.hook_scale", "ln_final.hook_normalized"};
  EXPECT_EQ(m->hook_names(), expected);
}

TEST(HookList, UnknownHookNameIsAnError) {
  HookedTransformer m(toy_cfg(1, false));
  EXPECT_THROW(m->add_hook("blocks.0.ln1.hook_scale", [](const torch::Tensor&, const std::string&) {
    return std::optional<torch::Tensor>();
  }), circuitlab::Error);
  EXPECT_THROW(m->add_hook("blocks.3.attn.hook_z", [](const torch::Tensor&, const std::string&) {
    return std::optional<torch::Tensor>();
  }), circuitlab::Error);
}

// ------------------------------------------------------------------------------ hook semantics
class HookSemantics : public ::testing::TestWithParam<int> {};

TEST_P(HookSemantics, ReplacingAnyActivationWithItsCachedValueLeavesLogitsUnchanged) {
  const int variant = GetParam();
  ModelConfig c = variant == 0 ? toy_cfg(2, true) : variant == 1 ? toy_cfg(2, false, "shortformer")
                                                                 : toy_cfg(2, true, "standard", false);
  HookedTransformer m = make_f64(c);
  torch::NoGradGuard ng;
  torch::Tensor tokens = some_tokens(2, 9, c.d_vocab, 3);
  torch::Tensor clean = m->forward(tokens);
  auto [cached_logits, cache] = run_with_cache(m, tokens);
  EXPECT_TRUE(all_close(cached_logits, clean, kPathRtol, kPathAtol, "run_with_cache logits"));
  ASSERT_EQ(cache.size(), m->hook_names().size());
  for (const auto& name : m->hook_names()) {
    torch::Tensor saved = cache.at(name).clone();
    int calls = 0;
    torch::Tensor patched = run_with_hooks(m, tokens, {{name, [&](const torch::Tensor& act, const std::string& n) {
                                                          ++calls;
                                                          EXPECT_EQ(n, name);
                                                          EXPECT_EQ(act.sizes(), saved.sizes());
                                                          return std::optional<torch::Tensor>(saved);
                                                        }}});
    EXPECT_EQ(calls, 1) << name;
    EXPECT_TRUE(all_close(patched, clean, kPathRtol, kPathAtol, "patched " + name));
  }
}
INSTANTIATE_TEST_SUITE_P(Models, HookSemantics, ::testing::Values(0, 1, 2));

TEST(HookSemantics, ZeroingOneHeadsZRemovesExactlyThatHeadsTerm) {
  // No LN: the last layer's heads reach the logits linearly, so the change must be exactly
  // z[:, :, h] · W_O[h] · W_U for the ablated head h and nothing else.
  ModelConfig c = toy_cfg(2, false);
  HookedTransformer m = make_f64(c);
  torch::NoGradGuard ng;
  torch::Tensor tokens = some_tokens(2, 10, c.d_vocab, 5);
  auto [clean, cache] = run_with_cache(m, tokens);
  for (int h = 0; h < c.n_heads; ++h) {
    torch::Tensor ablated = run_with_hooks(m, tokens, {{"blocks.1.attn.hook_z", [h](const torch::Tensor& z, const std::string&) {
                                                          torch::Tensor r = z.clone();
                                                          r.select(2, h).zero_();
                                                          return std::optional<torch::Tensor>(r);
                                                        }}});
    torch::Tensor z = cache.at("blocks.1.attn.hook_z").select(2, h);       // [B, T, Dh]
    torch::Tensor term = torch::matmul(torch::matmul(z, m->W_O(1)[h]), m->W_U());  // [B, T, V]
    EXPECT_TRUE(all_close(clean - ablated, term, kPathRtol, kPathAtol, "head " + std::to_string(h) + " term"));
    EXPECT_GT(term.abs().max().item<double>(), 1e-2) << "the head's term must be non-trivial";
  }
}

TEST(HookSemantics, ResultOnlyComputedWhenAskedAndDrivesTheOutput) {
  ModelConfig c = toy_cfg(1, true);
  HookedTransformer m = make_f64(c);
  torch::NoGradGuard ng;
  torch::Tensor tokens = some_tokens(1, 8, c.d_vocab, 9);
  auto [l1, only_z] = run_with_cache(m, tokens, [](const std::string& n) { return n == "blocks.0.attn.hook_z"; });
  EXPECT_EQ(only_z.size(), 1u);
  EXPECT_EQ(only_z.count("blocks.0.attn.hook_result"), 0u);
  auto [l2, res] = run_with_cache(m, tokens, [](const std::string& n) { return n == "blocks.0.attn.hook_result"; });
  ASSERT_EQ(res.size(), 1u);
  torch::Tensor result = res.at("blocks.0.attn.hook_result");  // [B, T, H, D]
  EXPECT_EQ(result.sizes(), (std::vector<int64_t>{1, 8, 4, 16}));
  // Sum over heads + b_O is the attention output.
  auto [l3, out] = run_with_cache(m, tokens, [](const std::string& n) { return n == "blocks.0.hook_attn_out"; });
  torch::Tensor b_O = m->state_dict().at("blocks.0.attn.b_O");
  EXPECT_TRUE(all_close(result.sum(2) + b_O, out.at("blocks.0.hook_attn_out"), kPathRtol, kPathAtol, "sum of results"));
  // Zeroing head 2 through hook_result equals zeroing it through hook_z.
  auto zero_head = [](int dim) {
    return [dim](const torch::Tensor& a, const std::string&) {
      torch::Tensor r = a.clone();
      r.select(dim, 2).zero_();
      return std::optional<torch::Tensor>(r);
    };
  };
  torch::Tensor via_result = run_with_hooks(m, tokens, {{"blocks.0.attn.hook_result", zero_head(2)}});
  torch::Tensor via_z = run_with_hooks(m, tokens, {{"blocks.0.attn.hook_z", zero_head(2)}});
  EXPECT_TRUE(all_close(via_result, via_z, kPathRtol, kPathAtol, "result vs z ablation"));
  EXPECT_FALSE(all_close(via_result, l1, kPathRtol, kPathAtol, "ablation changes logits"));
}

TEST(HookSemantics, HookGuardRemovesHooksOnException) {
  ModelConfig c = toy_cfg(1, true);
  HookedTransformer m(c);
  torch::NoGradGuard ng;
  torch::Tensor tokens = some_tokens(1, 5, c.d_vocab, 1);
  int calls = 0;
  try {
    HookGuard g(m);
    g.add("blocks.0.hook_resid_pre", [&](const torch::Tensor&, const std::string&) {
      ++calls;
      throw std::runtime_error("boom");
      return std::optional<torch::Tensor>();
    });
    m->forward(tokens);
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(calls, 1);
  m->forward(tokens);
  EXPECT_EQ(calls, 1) << "the hook must be gone after the guard's scope";
  // A cache left on by an exception is turned off by run_with_cache.
  EXPECT_THROW(run_with_cache(m, some_tokens(1, 13, c.d_vocab, 1)), circuitlab::Error);
  auto [l, cache] = run_with_cache(m, tokens, [](const std::string& n) { return n == "hook_embed"; });
  EXPECT_EQ(cache.size(), 1u);
}

TEST(HookSemantics, WrongShapeFromHookIsRejected) {
  HookedTransformer m(toy_cfg(1, true));
  torch::NoGradGuard ng;
  EXPECT_ANY_THROW(run_with_hooks(m, some_tokens(1, 5, 41, 1), {{"blocks.0.attn.hook_pattern", [](const torch::Tensor& a, const std::string&) {
                                                                   return std::optional<torch::Tensor>(a.sum(-1));
                                                                 }}}));
}

// ------------------------------------------------------------------------------ forward details
TEST(Forward, InputLongerThanNCtxIsAnErrorNamingNCtx) {
  HookedTransformer m(toy_cfg(1, true));
  try {
    m->forward(some_tokens(1, 13, 41, 1));
    FAIL() << "expected an Error";
  } catch (const circuitlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_ctx (12)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m->forward(torch::full({1, 3}, 41, torch::kLong)), circuitlab::Error);
}

TEST(Forward, RightPaddedBatchMatchesUnbatchedRuns) {
  for (const auto& pos : {"standard", "shortformer"}) {
    ModelConfig c = toy_cfg(2, true, pos, false);
    HookedTransformer m = make_f64(c);
    torch::NoGradGuard ng;
    std::vector<std::vector<int64_t>> seqs = {{3, 9, 14, 1, 40}, {7, 7, 2, 30, 11, 5, 8, 19, 0, 33}, {12}};
    auto [tokens, mask] = pad_batch(seqs, 0);
    ForwardOptions o;
    o.attention_mask = mask;
    auto [batched, cache] = run_with_cache(m, tokens, [](const std::string& n) { return n == "blocks.1.attn.hook_pattern"; }, o);
    for (size_t b = 0; b < seqs.size(); ++b) {
      torch::Tensor single = m->forward(torch::tensor(seqs[b], torch::kLong).unsqueeze(0));
      int64_t T = static_cast<int64_t>(seqs[b].size());
      EXPECT_TRUE(all_close(batched[b].slice(0, 0, T), single[0], kPathRtol, kPathAtol, std::string(pos) + " row " + std::to_string(b)));
    }
    // Padding keys get no attention from any query.
    torch::Tensor pat = cache.at("blocks.1.attn.hook_pattern");  // [B, H, T, T]
    EXPECT_EQ(pat[0].slice(2, 5, 10).abs().max().item<double>(), 0.0);
  }
}

TEST(Forward, FrozenPatternsReplaceComputedOnes) {
  ModelConfig c = toy_cfg(2, true);
  HookedTransformer m = make_f64(c);
  torch::NoGradGuard ng;
  torch::Tensor tokens = some_tokens(2, 7, c.d_vocab, 4);
  auto [clean, cache] = run_with_cache(m, tokens);
  ForwardOptions same;
  same.frozen_patterns = {cache.at("blocks.0.attn.hook_pattern"), cache.at("blocks.1.attn.hook_pattern")};
  EXPECT_TRUE(all_close(m->forward(tokens, same), clean, kPathRtol, kPathAtol, "frozen = own patterns"));
  ForwardOptions uniform;
  torch::Tensor causal_uniform = torch::ones({7, 7}, torch::kDouble).tril();
  causal_uniform = (causal_uniform / causal_uniform.sum(-1, true)).expand({2, 4, 7, 7});
  uniform.frozen_patterns = {torch::Tensor(), causal_uniform};
  auto [l, c2] = run_with_cache(m, tokens, [](const std::string& n) { return n == "blocks.1.attn.hook_pattern"; }, uniform);
  EXPECT_TRUE(all_close(c2.at("blocks.1.attn.hook_pattern"), causal_uniform, 0, 0, "hook sees the frozen pattern"));
  EXPECT_FALSE(all_close(l, clean, kPathRtol, kPathAtol, "uniform pattern changes logits"));
}

TEST(Forward, FusedWeightsFollowInPlaceUpdatesAndGradientsFlow) {
  ModelConfig c = toy_cfg(1, true);
  HookedTransformer m(c);
  torch::Tensor tokens = some_tokens(2, 6, c.d_vocab, 2);
  torch::Tensor before;
  {
    torch::NoGradGuard ng;
    before = m->forward(tokens);
    m->W_K(0).mul_(3.0);  // an optimiser step, as far as the cache can tell
    torch::Tensor after = m->forward(tokens);
    HookedTransformer fresh(c);
    fresh->load_state_dict(m->state_dict(), "test");
    EXPECT_TRUE(all_close(after, fresh->forward(tokens), 0, 0, "cache invalidated"));
    EXPECT_FALSE(all_close(after, before, kPathRtol, kPathAtol, "W_K change visible"));
  }
  torch::Tensor loss = m->forward(tokens).logsumexp(-1).mean();
  loss.backward();
  for (const auto& kv : m->named_parameters()) {
    ASSERT_TRUE(kv.value().grad().defined()) << kv.key();
  }
  EXPECT_GT(m->W_Q(0).grad().abs().sum().item<double>(), 0.0);
}

TEST(Params, TransformerLensNamesAndGpt2Init) {
  ModelConfig c = toy_cfg(2, true);
  c.initializer_range = -1;
  c.d_model = 64;
  c.d_head = 16;
  HookedTransformer m(c);
  std::vector<std::string> names;
  for (const auto& kv : m->named_parameters()) names.push_back(kv.key());
  std::vector<std::string> expected = {"embed.W_E", "pos_embed.W_pos"};
  for (int l = 0; l < 2; ++l)
    for (const char* n : {"ln1.w", "ln1.b", "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.b_Q", "attn.b_K",
                          "attn.b_V", "attn.b_O"})
      expected.push_back("blocks." + std::to_string(l) + "." + n);
  for (const char* n : {"ln_final.w", "ln_final.b", "unembed.W_U", "unembed.b_U"}) expected.push_back(n);
  EXPECT_EQ(names, expected);
  const double std_expected = 0.8 / std::sqrt(64.0);  // TL "gpt2" init default
  torch::Tensor wq = m->W_Q(1);
  EXPECT_NEAR(wq.std().item<double>(), std_expected, 0.1 * std_expected);
  EXPECT_EQ(m->state_dict().at("blocks.0.attn.b_Q").abs().max().item<double>(), 0.0);
  EXPECT_EQ(m->state_dict().at("ln_final.w").min().item<double>(), 1.0);
  HookedTransformer same(c);
  EXPECT_TRUE(torch::equal(same->W_E(), m->W_E())) << "init is a function of cfg.seed";
}

// ------------------------------------------------------------------------------ safetensors
TEST(Safetensors, RoundTripEveryDtype) {
  const circuitlab::testing::TempDir dir_tmp("st");
  std::string dir = dir_tmp.path();
  std::map<std::string, torch::Tensor> t;
  t["f32"] = torch::randn({3, 4});
  t["f16"] = torch::randn({5}).to(torch::kHalf);
  t["bf16"] = torch::randn({2, 2}).to(torch::kBFloat16);
  t["f64"] = torch::randn({7}, torch::kDouble);
  t["i64"] = torch::arange(-3, 9, torch::kLong);
  t["i32"] = torch::arange(0, 6, torch::kInt).view({2, 3});
  t["i16"] = torch::arange(-2, 3, torch::kShort);
  t["i8"] = torch::arange(-4, 4, torch::kChar);
  t["u8"] = torch::arange(0, 255, torch::kByte);
  t["bool"] = torch::tensor({true, false, true});
  t["scalar"] = torch::tensor(2.5f);
  t["empty"] = torch::zeros({0, 3});
  save_safetensors(dir + "/a.safetensors", t, {{"note", "x"}});
  SafetensorsFile f = SafetensorsFile::open(dir + "/a.safetensors");
  EXPECT_EQ(f.metadata().at("note"), "x");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.names().size(), t.size());
  for (const auto& [n, v] : t) {
    torch::Tensor r = f.view(n);
    EXPECT_EQ(r.scalar_type(), v.scalar_type()) << n;
    EXPECT_TRUE(torch::equal(r, v)) << n;
  }
  // Header padded to 8; data sorted by alignment (8-byte dtypes first).
  std::string bytes = read_file(dir + "/a.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(f.info("f64").begin % 8, 0u);
  EXPECT_EQ(f.info("f32").begin % 4, 0u);
}

// Writes a raw safetensors file: header JSON + data bytes (for malformed inputs).
std::string raw_file(const std::string& dir, const std::string& name, const std::string& header, size_t data_bytes,
                     int64_t header_len_override = -1) {
  std::string path = dir + "/" + name;
  std::string out(8, '\0');
  uint64_t n = header_len_override >= 0 ? static_cast<uint64_t>(header_len_override) : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out += header;
  out += std::string(data_bytes, '\x01');
  write_file_atomic(path, out);
  return path;
}

void expect_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << path << ": expected an Error";
  } catch (const circuitlab::Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "names the file: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "mentions '" << p << "': " << msg;
  }
}

TEST(Safetensors, BadInputsAreOneLineErrorsNamingFileAndTensor) {
  const circuitlab::testing::TempDir d_tmp("stbad");
  std::string d = d_tmp.path();
  {
    std::string p = d + "/tiny";
    write_file_atomic(p, std::string(5, '\0'));
    expect_error(p, {"truncated"});
  }
  expect_error(raw_file(d, "past_end", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 100000),
               {"header length", "past the end"});
  expect_error(raw_file(d, "overlap",
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12),
               {"overlap", "'b'"});
  expect_error(raw_file(d, "out_of_range", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
               {"'a'", "out of range"});
  expect_error(raw_file(d, "dtype", R"({"a":{"dtype":"F7","shape":[4],"data_offsets":[0,16]}})", 16),
               {"'a'", "unsupported dtype \"F7\""});
  expect_error(raw_file(d, "shape_bytes", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16),
               {"'a'", "needs 12 bytes"});
  expect_error(raw_file(d, "gap", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), {"'a'", "gap"});
  expect_error(raw_file(d, "trailing", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12), {"trailing"});
  expect_error(raw_file(d, "notjson", R"({"a":)", 0), {"not valid JSON"});
  expect_error(raw_file(d, "noshape", R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), {"'a'", "shape"});
  // A real file cut short.
  std::map<std::string, torch::Tensor> t{{"w", torch::randn({64, 64})}};
  save_safetensors(d + "/full.safetensors", t);
  std::string bytes = read_file(d + "/full.safetensors");
  write_file_atomic(d + "/cut.safetensors", bytes.substr(0, bytes.size() - 100));
  expect_error(d + "/cut.safetensors", {"'w'", "truncated"});
}

// ------------------------------------------------------------------------------ model dirs
TEST(ModelDir, ExportImportIsBitIdenticalWithTransformerLensNamesAndShapes) {
  for (bool ln : {true, false}) {
    ModelConfig c = toy_cfg(2, ln, ln ? "standard" : "shortformer");
    HookedTransformer m(c);
    const circuitlab::testing::TempDir d_tmp("export");
    std::string d = d_tmp.path();
    save_model_dir(m, d);
    // Literal TransformerLens state-dict names and shapes for this HookedTransformerConfig
    // (n_layers 2, d_model 16, n_heads 4, d_head 5, n_ctx 12, d_vocab 41, attn_only).
    std::map<std::string, std::vector<int64_t>> tl = {
        {"embed.W_E", {41, 16}}, {"pos_embed.W_pos", {12, 16}}, {"unembed.W_U", {16, 41}}, {"unembed.b_U", {41}},
        {"blocks.0.attn.W_Q", {4, 16, 5}}, {"blocks.0.attn.W_K", {4, 16, 5}}, {"blocks.0.attn.W_V", {4, 16, 5}},
        {"blocks.0.attn.W_O", {4, 5, 16}}, {"blocks.0.attn.b_Q", {4, 5}}, {"blocks.0.attn.b_K", {4, 5}},
        {"blocks.0.attn.b_V", {4, 5}}, {"blocks.0.attn.b_O", {16}},
        {"blocks.1.attn.W_Q", {4, 16, 5}}, {"blocks.1.attn.W_K", {4, 16, 5}}, {"blocks.1.attn.W_V", {4, 16, 5}},
        {"blocks.1.attn.W_O", {4, 5, 16}}, {"blocks.1.attn.b_Q", {4, 5}}, {"blocks.1.attn.b_K", {4, 5}},
        {"blocks.1.attn.b_V", {4, 5}}, {"blocks.1.attn.b_O", {16}}};
    if (ln) {
      for (const char* n : {"blocks.0.ln1.w", "blocks.0.ln1.b", "blocks.1.ln1.w", "blocks.1.ln1.b", "ln_final.w", "ln_final.b"})
        tl[n] = {16};
    }
    SafetensorsFile f = SafetensorsFile::open(d + "/model.safetensors");
    std::map<std::string, std::vector<int64_t>> written;
    for (const auto& n : f.names()) written[n] = f.info(n).shape;
    EXPECT_EQ(written, tl);
    nlohmann::json j = nlohmann::json::parse(read_file(d + "/config.json"));
    for (const char* k : {"n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab", "d_vocab_out", "attn_only",
                          "normalization_type", "positional_embedding_type", "act_fn", "eps", "d_mlp"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["normalization_type"].is_null(), !ln);
    LoadedModel back = load_model_dir(d);
    auto a = m->state_dict(), b = back.model->state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [n, t] : a) EXPECT_TRUE(torch::equal(t, b.at(n))) << n;
    const circuitlab::testing::TempDir d2_tmp("export2");
    std::string d2 = d2_tmp.path();
    save_model_dir(back.model, d2);
    EXPECT_EQ(read_file(d + "/model.safetensors"), read_file(d2 + "/model.safetensors")) << "byte-identical re-export";
    EXPECT_EQ(read_file(d + "/config.json"), read_file(d2 + "/config.json"));
  }
}

class ModelDirBad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    HookedTransformer m(toy_cfg(1, true));
    save_model_dir(m, dir_);
    sd_ = m->state_dict();
  }
  void expect_load_error(const std::vector<std::string>& parts) {
    try {
      load_model_dir(dir_);
      ADD_FAILURE() << "expected an Error";
    } catch (const circuitlab::Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "mentions '" << p << "': " << msg;
    }
  }
  circuitlab::testing::TempDir tmp_{"models-bad"};
  std::string dir_;
  std::map<std::string, torch::Tensor> sd_;
};

TEST_F(ModelDirBad, MissingTensor) {
  sd_.erase("blocks.0.attn.W_V");
  save_safetensors(dir_ + "/model.safetensors", sd_);
  expect_load_error({"model.safetensors", "missing tensor 'blocks.0.attn.W_V'"});
}

TEST_F(ModelDirBad, WrongShape) {
  sd_["blocks.0.attn.W_O"] = torch::zeros({4, 16, 5});
  save_safetensors(dir_ + "/model.safetensors", sd_);
  expect_load_error({"model.safetensors", "'blocks.0.attn.W_O'", "[4, 16, 5]", "expected [4, 5, 16]"});
}

TEST_F(ModelDirBad, InconsistentConfig) {
  nlohmann::json j = nlohmann::json::parse(read_file(dir_ + "/config.json"));
  j["d_model"] = 20;  // tensors were written for 16
  write_file_atomic(dir_ + "/config.json", j.dump());
  expect_load_error({"'embed.W_E'", "[41, 16]", "expected [41, 20]"});
  j["d_model"] = 16;
  j.erase("n_ctx");
  write_file_atomic(dir_ + "/config.json", j.dump());
  expect_load_error({"config.json", "'n_ctx' is missing"});
  j["n_ctx"] = "twelve";
  write_file_atomic(dir_ + "/config.json", j.dump());
  expect_load_error({"config.json", "'n_ctx'", "wrong type"});
  j["n_ctx"] = 12;
  j["positional_embedding_type"] = "rotary";
  write_file_atomic(dir_ + "/config.json", j.dump());
  expect_load_error({"config.json", "positional_embedding_type"});
}

TEST_F(ModelDirBad, Gpt2HeadsMustDivideEmbedding) {
  nlohmann::json j = {{"model_type", "gpt2"}, {"n_layer", 1}, {"n_head", 5}, {"n_embd", 16}, {"n_positions", 12}, {"vocab_size", 41}};
  write_file_atomic(dir_ + "/config.json", j.dump());
  expect_load_error({"config.json", "'n_head'", "must divide n_embd"});
}

TEST_F(ModelDirBad, UnexpectedTensorAndMissingFiles) {
  sd_["blocks.0.mlp.W_in"] = torch::zeros({16, 64});
  save_safetensors(dir_ + "/model.safetensors", sd_);
  expect_load_error({"unexpected tensor 'blocks.0.mlp.W_in'"});
  std::remove((dir_ + "/model.safetensors").c_str());
  expect_load_error({"model.safetensors: missing"});
}

}  // namespace
}  // namespace circuitlab::models
