// API tests of the lab over real HTTP on loopback: every endpoint on a compact-vocab toy and on
// a Hugging Face-layout GPT-2, ablation through the API against run_with_hooks in C++,
// batched patching against the one-pass-per-cell reference, bad requests, concurrency.
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "analysis/patching.h"
#include "data/token_namer.h"
#include "server/http_server.h"
#include "server/lab.h"
#include "tests/server/lab_fixtures.h"

using nlohmann::json;
using namespace circuitlab;

namespace {

// Values cross the API rounded to 4 decimals (lab.cpp r4): compare with that resolution.
constexpr double kApiAtol = 1e-4 * 0.5 + 1e-6;
constexpr double kApiRtol = 1e-5;

void expect_close(double got, double want, const std::string& what, double atol = kApiAtol, double rtol = kApiRtol) {
  EXPECT_LE(std::abs(got - want), atol + rtol * std::abs(want)) << what << ": got " << got << ", want " << want;
}

struct LabEnv {
  std::string dir;
  std::unique_ptr<server::Lab> lab;
  std::unique_ptr<server::HttpServer> http;
  std::thread thread;
  int port = 0;
  models::LoadedModel toy, gpt2;  // the same dirs loaded independently, for C++-side references
  data::Tokenizer tok = data::Tokenizer::load_default();
};
LabEnv* env = nullptr;

std::pair<int, json> post(const std::string& path, const std::string& body) {
  httplib::Client cli("127.0.0.1", env->port);
  cli.set_read_timeout(120, 0);
  auto res = cli.Post(path.c_str(), body, "application/json");
  if (!res) return {-1, json()};
  return {res->status, json::parse(res->body, nullptr, false)};
}
std::pair<int, json> post(const std::string& path, const json& body) { return post(path, body.dump()); }
int models_status() {
  httplib::Client cli("127.0.0.1", env->port);
  auto res = cli.Get("/api/models");
  return res ? res->status : -1;
}

// Model ids of `text` as the lab builds them (BOS + GPT-2 ids mapped into the model's vocab).
torch::Tensor ids_for(const models::LoadedModel& m, const std::string& text) {
  std::vector<int64_t> ids{m.vocab_map ? m.vocab_map->to_compact(data::kEndOfText) : data::kEndOfText};
  for (int32_t g : env->tok.encode(text)) ids.push_back(m.vocab_map ? m.vocab_map->to_compact(g) : g);
  return torch::tensor(ids, torch::kLong).unsqueeze(0);  // [1,T]
}


class LabApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    env = new LabEnv();
    env->dir = labtest::fresh_temp_dir("api");
    const auto toy_dir = labtest::make_toy_model_dir(env->dir + "/toy/model");
    const auto gpt2_dir = labtest::make_gpt2_dir(env->dir + "/gpt2");
    env->lab = std::make_unique<server::Lab>();
    ASSERT_EQ(env->lab->add_model(toy_dir), "toy");
    ASSERT_EQ(env->lab->add_model(gpt2_dir), "gpt2");
    server::ServeOptions so;
    so.port = 0;
    so.max_body_bytes = 64 * 1024;
    env->http = std::make_unique<server::HttpServer>(*env->lab, so);
    env->port = env->http->bind();
    env->thread = std::thread([] { env->http->listen(); });
    env->toy = models::load_model_dir(toy_dir);
    env->gpt2 = models::load_model_dir(gpt2_dir);
  }
  static void TearDownTestSuite() {
    env->http->stop();
    env->thread.join();
    delete env;
    env = nullptr;
  }

};

const char* kPrompt = "When Mary and John went to the store, John gave a drink to";

TEST_F(LabApi, ModelsListsBothFamiliesAndTheGpt2Hint) {
  httplib::Client cli("127.0.0.1", env->port);
  auto res = cli.Get("/api/models");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto j = json::parse(res->body);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][0]["name"], "toy");
  EXPECT_EQ(j["models"][0]["family"], "toy");
  EXPECT_EQ(j["models"][0]["compact_vocab"], true);
  EXPECT_EQ(j["models"][1]["family"], "gpt2");
  EXPECT_EQ(j["gpt2_loaded"], true);
  EXPECT_FALSE(j.contains("gpt2_hint"));
  EXPECT_EQ(j["default_model"], "gpt2") << "GPT-2 is the most capable model loaded";
  for (const auto& m : j["models"]) {
    EXPECT_TRUE(m["examples"].contains("patching")) << m.dump();
    EXPECT_TRUE(m["examples"].contains("steering")) << m.dump();
    EXPECT_GT(m["n_params"].get<int64_t>(), 0);
  }
}

TEST_F(LabApi, RequestsWithoutAModelGoToTheDefaultModel) {
  auto [st, j] = post("/api/tokenize", json{{"text", " Mary"}});
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["model"], "gpt2");
}

// The shared namer (data/token_namer.h) names the compact "other" id as analysis.json does.
TEST_F(LabApi, OutputTokensOfTheOtherIdCarryTheSharedPlaceholder) {
  data::TokenNamer namer(&env->tok, &*env->toy.vocab_map);
  const int64_t other = env->toy.vocab_map->other_id();
  EXPECT_EQ(namer.str(other), "<other>");
  EXPECT_EQ(namer.gpt2_id(other), -1);
  EXPECT_EQ(namer.json(other), json({{"id", other}, {"gpt2_id", -1}, {"str", "<other>"}}));
  EXPECT_EQ(namer.str(env->toy.vocab_map->to_compact(data::kEndOfText)), "<|endoftext|>");
  data::TokenNamer bare(nullptr, nullptr);
  EXPECT_EQ(bare.str(464), "#464") << "no tokenizer: ids by number";
}

TEST_F(LabApi, TokenizeMapsCompactIdsBackToGpt2Strings) {
  auto [st, j] = post("/api/tokenize", json{{"model", "toy"}, {"text", " Mary zebra"}});
  ASSERT_EQ(st, 200) << j.dump();
  auto g = env->tok.encode(" Mary zebra");
  ASSERT_EQ(j["tokens"].size(), g.size() + 1);
  EXPECT_EQ(j["tokens"][0]["gpt2_id"], data::kEndOfText);
  EXPECT_EQ(j["tokens"][1]["gpt2_id"], g[0]);
  EXPECT_EQ(j["tokens"][1]["str"], " Mary");
  EXPECT_EQ(j["tokens"][1]["id"], env->toy.vocab_map->to_compact(g[0]));
  EXPECT_FALSE(j["tokens"][1].contains("oov"));
  // " zebra" (" z" + "ebra") ends outside the toy's compact vocabulary: the model reads the
  // "other" id, and the token keeps its real GPT-2 id and text, flagged as unseen.
  EXPECT_EQ(j["tokens"].back()["id"], env->toy.vocab_map->other_id());
  EXPECT_EQ(j["tokens"].back()["gpt2_id"], g.back());
  EXPECT_EQ(j["tokens"].back()["str"], env->tok.token_str(g.back()));
  EXPECT_EQ(j["tokens"].back()["oov"], true);
  auto [st2, j2] = post("/api/tokenize", json{{"model", "gpt2"}, {"text", " Mary zebra"}, {"prepend_bos", false}});
  ASSERT_EQ(st2, 200);
  ASSERT_EQ(j2["tokens"].size(), g.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(j2["tokens"][i]["id"], g[i]);
}

void check_run(const json& j, models::LoadedModel& m, const torch::Tensor& tokens) {
  const auto& cfg = m.model->cfg();
  const int64_t T = tokens.size(1);
  auto [logits, cache] = models::run_with_cache(m.model, tokens);
  auto probs = torch::softmax(logits[0], -1);  // [T,V]
  ASSERT_EQ(j["tokens"].size(), size_t(T));
  ASSERT_EQ(j["predictions"].size(), size_t(T));
  for (int64_t t = 0; t < T; ++t) {
    const auto& top = j["predictions"][t][0];
    expect_close(top["prob"].get<double>(), probs[t].max().item<double>(), "top-1 prob at " + std::to_string(t));
    expect_close(probs[t][top["id"].get<int64_t>()].item<double>(), probs[t].max().item<double>(),
                 "prob of the reported top-1 id at " + std::to_string(t));
  }
  expect_close(j["loss"].get<double>(), analysis::next_token_loss(logits, tokens), "loss");
  ASSERT_EQ(j["attention"].size(), size_t(cfg.n_layers));
  for (int l = 0; l < cfg.n_layers; ++l) {
    auto pat = cache.at("blocks." + std::to_string(l) + ".attn.hook_pattern")[0];  // [H,T,T]
    ASSERT_EQ(j["attention"][l].size(), size_t(cfg.n_heads));
    for (int h = 0; h < cfg.n_heads; ++h)
      for (int64_t q = 0; q < T; ++q) {
        ASSERT_EQ(j["attention"][l][h][q].size(), size_t(q + 1));
        for (int64_t k = 0; k <= q; ++k)
          expect_close(j["attention"][l][h][q][k].get<double>(), pat[h][q][k].item<double>(), "pattern");
      }
  }
  // Residual norms: stage 0 = resid_pre of block 0, stage l+1 = resid_post of block l.
  ASSERT_EQ(j["resid_norms"].size(), size_t(cfg.n_layers + 1));
  for (int s = 0; s <= cfg.n_layers; ++s) {
    auto resid = s == 0 ? cache.at("blocks.0.hook_resid_pre") : cache.at("blocks." + std::to_string(s - 1) + ".hook_resid_post");
    auto norms = resid[0].norm(2, -1);
    for (int64_t t = 0; t < T; ++t)
      expect_close(j["resid_norms"][s][t].get<double>(), norms[t].item<double>(), "resid norm", 1e-4, 1e-4);
  }
  // The logit lens at the last stage is the model's own prediction.
  const auto& lens = j["logit_lens"];
  ASSERT_EQ(lens.size(), size_t(cfg.n_layers + 1));
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_EQ(lens[cfg.n_layers][t][0]["id"], j["predictions"][t][0]["id"]);
    expect_close(lens[cfg.n_layers][t][0]["prob"].get<double>(), j["predictions"][t][0]["prob"].get<double>(), "lens");
  }
}

TEST_F(LabApi, RunOnToyMatchesTheModel) {
  auto [st, j] = post("/api/run", json{{"model", "toy"}, {"text", kPrompt}});
  ASSERT_EQ(st, 200) << j.dump();
  check_run(j, env->toy, ids_for(env->toy, kPrompt));
}

TEST_F(LabApi, RunOnGpt2MatchesTheModel) {
  auto [st, j] = post("/api/run", json{{"model", "gpt2"}, {"text", kPrompt}});
  ASSERT_EQ(st, 200) << j.dump();
  check_run(j, env->gpt2, ids_for(env->gpt2, kPrompt));
}

// The test's own ablation hook, written independently of analysis/ablation.cpp.
torch::Tensor zero_heads_with_hooks(models::HookedTransformer& model, const torch::Tensor& tokens,
                                    const std::vector<std::pair<int, int>>& heads) {
  std::vector<std::pair<std::string, models::HookFn>> hooks;
  for (auto [l, h] : heads) {
    const int head = h;
    hooks.emplace_back("blocks." + std::to_string(l) + ".attn.hook_z", [head](const torch::Tensor& z, const std::string&) {
      auto out = z.clone();  // [B,T,H,Dh]
      out.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), head}, 0.0);
      return std::optional<torch::Tensor>(out);
    });
  }
  return models::run_with_hooks(model, tokens, hooks);
}

void check_ablation_equals_hooks(const std::string& name, models::LoadedModel& m,
                                 const std::vector<std::pair<int, int>>& heads) {
  json hs = json::array();
  for (auto [l, h] : heads) hs.push_back({{"layer", l}, {"head", h}});
  auto [st, j] = post("/api/ablate", json{{"model", name}, {"text", kPrompt}, {"heads", hs}, {"kind", "zero"}});
  ASSERT_EQ(st, 200) << j.dump();
  auto tokens = ids_for(m, kPrompt);
  torch::NoGradGuard ng;
  auto clean = m.model->forward(tokens);
  auto ablated = zero_heads_with_hooks(m.model, tokens, heads);
  const double lc = analysis::next_token_loss(clean, tokens), la = analysis::next_token_loss(ablated, tokens);
  expect_close(j["clean_loss"].get<double>(), lc, name + " clean loss");
  expect_close(j["ablated_loss"].get<double>(), la, name + " ablated loss");
  expect_close(j["loss_delta"].get<double>(), la - lc, name + " loss delta", 2e-4);
  EXPECT_GT(std::abs(la - lc), 1e-4) << "ablating must change the loss of " << name;
  auto top = ablated[0].argmax(-1);
  for (int64_t t = 0; t < tokens.size(1); ++t) {
    EXPECT_EQ(j["positions"][t]["ablated_top"][0]["id"].get<int64_t>(), top[t].item<int64_t>()) << "pos " << t;
  }
  // /api/run with the same ablation reports the same loss.
  auto [st2, r] = post("/api/run", json{{"model", name}, {"text", kPrompt}, {"ablate", {{"heads", hs}}}});
  ASSERT_EQ(st2, 200);
  expect_close(r["loss"].get<double>(), la, name + " /api/run ablated loss");
}

}  // namespace

TEST_F(LabApi, AblateThroughApiEqualsRunWithHooksOnToy) {
  check_ablation_equals_hooks("toy", env->toy, {{0, 1}});
  check_ablation_equals_hooks("toy", env->toy, {{0, 0}, {1, 2}, {1, 3}});
}

TEST_F(LabApi, AblateThroughApiEqualsRunWithHooksOnGpt2) {
  check_ablation_equals_hooks("gpt2", env->gpt2, {{1, 0}});
}

TEST_F(LabApi, MeanAblationUsesThePromptMean) {
  auto [st, j] = post("/api/ablate", json{{"model", "toy"}, {"text", kPrompt}, {"heads", {{0, 2}}}, {"kind", "mean"}});
  ASSERT_EQ(st, 200) << j.dump();
  auto tokens = ids_for(env->toy, kPrompt);
  torch::NoGradGuard ng;
  auto [logits, cache] = models::run_with_cache(env->toy.model, tokens);
  auto mean = cache.at("blocks.0.attn.hook_z")[0].select(1, 2).mean(0);  // [Dh]
  auto ablated = models::run_with_hooks(env->toy.model, tokens,
                                        {{"blocks.0.attn.hook_z", [&](const torch::Tensor& z, const std::string&) {
                                            auto out = z.clone();
                                            out.select(2, 2).copy_(mean.expand_as(out.select(2, 2)));
                                            return std::optional<torch::Tensor>(out);
                                          }}});
  expect_close(j["ablated_loss"].get<double>(), analysis::next_token_loss(ablated, tokens), "mean-ablated loss");
}

TEST_F(LabApi, PatchResidualAtTheOnlyDifferingTokenRecoversEverything) {
  const std::string clean = "When Mary and John went to the store, John gave a drink to";
  const std::string corrupt = "When Mary and John went to the store, Mary gave a drink to";
  for (const std::string name : {"toy", "gpt2"}) {
    auto [st, j] = post("/api/patch", json{{"model", name},
                                          {"clean", clean},
                                          {"corrupted", corrupt},
                                          {"answer_correct", " Mary"},
                                          {"answer_incorrect", " John"},
                                          {"target", "resid_pre"}});
    ASSERT_EQ(st, 200) << j.dump();
    auto& m = name == "toy" ? env->toy : env->gpt2;
    auto ct = ids_for(m, clean), xt = ids_for(m, corrupt);
    const int64_t T = ct.size(1);
    ASSERT_EQ(j["recovery"].size(), size_t(m.model->cfg().n_layers));
    ASSERT_EQ(j["recovery"][0].size(), size_t(T));
    // Layer-0 resid_pre is the embedding: patching the one differing position makes the corrupted
    // input the clean one (recovery 1); patching an identical position changes nothing (0).
    for (int64_t t = 0; t < T; ++t) {
      const bool differs = ct[0][t].item<int64_t>() != xt[0][t].item<int64_t>();
      expect_close(j["recovery"][0][t].get<double>(), differs ? 1.0 : 0.0, name + " L0 recovery at " + std::to_string(t),
                   2e-3);
    }
    // Every cell equals the plain one-pass-per-cell reference.
    const int64_t correct = j["answer_correct"]["id"], incorrect = j["answer_incorrect"]["id"];
    auto ref = analysis::activation_patching_reference(m.model, ct, xt, correct, incorrect, analysis::PatchTarget::ResidPre);
    expect_close(j["clean_logit_diff"].get<double>(), ref.clean_logit_diff, "clean logit diff");
    expect_close(j["corrupted_logit_diff"].get<double>(), ref.corrupt_logit_diff, "corrupted logit diff");
    for (int64_t l = 0; l < ref.patched_logit_diff.size(0); ++l)
      for (int64_t t = 0; t < T; ++t)
        expect_close(j["patched_logit_diff"][l][t].get<double>(), ref.patched_logit_diff[l][t].item<double>(),
                     name + " patched cell", 2e-4, 1e-4);
  }
}

TEST_F(LabApi, BatchedPatchingEqualsReferenceForEveryTarget) {
  auto ct = ids_for(env->toy, "When Mary and John went to the store, John gave a drink to");
  auto xt = ids_for(env->toy, "When Mary and John went to the store, Mary gave a drink to");
  const int64_t a = env->toy.vocab_map->to_compact(env->tok.encode(" Mary")[0]);
  const int64_t b = env->toy.vocab_map->to_compact(env->tok.encode(" John")[0]);
  for (auto target : {analysis::PatchTarget::ResidPre, analysis::PatchTarget::AttnOut, analysis::PatchTarget::Head,
                      analysis::PatchTarget::HeadPos}) {
    auto fast = analysis::activation_patching(env->toy.model, ct, xt, a, b, target, /*batch=*/7);
    auto ref = analysis::activation_patching_reference(env->toy.model, ct, xt, a, b, target);
    ASSERT_EQ(fast.patched_logit_diff.sizes(), ref.patched_logit_diff.sizes()) << analysis::to_string(target);
    auto diff = (fast.patched_logit_diff - ref.patched_logit_diff).abs();
    EXPECT_TRUE(torch::allclose(fast.patched_logit_diff, ref.patched_logit_diff, /*rtol=*/1e-4, /*atol=*/1e-4))
        << analysis::to_string(target) << ": worst mismatch " << diff.max().item<double>();
  }
  auto [st, j] = post("/api/patch", json{{"model", "toy"},
                                        {"clean", "When Mary and John went to the store, John gave a drink to"},
                                        {"corrupted", "When Mary and John went to the store, Mary gave a drink to"},
                                        {"answer_correct", " Mary"},
                                        {"answer_incorrect", " John"},
                                        {"target", "head"}});
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["cols"].size(), 4u);
  EXPECT_EQ(j["recovery"][1].size(), 4u);
}

TEST_F(LabApi, GenerateIsSeededAndSteerWithZeroCoefficientChangesNothing) {
  for (const std::string name : {"toy", "gpt2"}) {
    json g = {{"model", name}, {"prompt", "I went up to my friend and said"}, {"max_new_tokens", 8},
              {"temperature", 1.0},  {"top_p", 0.9},                            {"seed", 7}};
    auto [s1, g1] = post("/api/generate", g);
    auto [s2, g2] = post("/api/generate", g);
    ASSERT_EQ(s1, 200) << g1.dump();
    ASSERT_EQ(g1["tokens"].size(), 8u);
    EXPECT_EQ(g1["tokens"], g2["tokens"]) << "same seed, same tokens";
    json s = g;
    s["prompt_add"] = " Love";
    s["prompt_sub"] = " Hate";
    s["layer"] = 1;
    s["coefficient"] = 0.0;
    auto [s3, st0] = post("/api/steer", s);
    ASSERT_EQ(s3, 200) << st0.dump();
    EXPECT_EQ(st0["unsteered"]["tokens"], g1["tokens"]) << "the unsteered run is /api/generate with the same seed";
    EXPECT_EQ(st0["steered"]["tokens"], g1["tokens"]) << "coefficient 0 steers nothing";
    s["coefficient"] = 50.0;
    s["temperature"] = 0.0;
    auto [s4, st1] = post("/api/steer", s);
    ASSERT_EQ(s4, 200);
    EXPECT_NE(st1["steered"]["tokens"], st1["unsteered"]["tokens"]) << name << ": a large vector must change greedy output";
    EXPECT_GT(st1["vector_norms"][1].get<double>(), 0.0);
    EXPECT_EQ(st1["vector_norms"][0].get<double>(), 0.0) << "BOS is shared by both prompts";
  }
}

TEST_F(LabApi, BadRequestsGet4xxWithAMessageAndTheServerKeepsServing) {
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  };
  const std::string long_prompt = [] {
    std::string s;
    for (int i = 0; i < 100; ++i) s += " the";
    return s;
  }();
  const std::vector<Case> cases = {
      {"/api/run", "{not json", 400, "malformed JSON"},
      {"/api/run", "", 400, "expected a JSON object"},
      {"/api/run", "[1,2]", 400, "expected a JSON object"},
      {"/api/run", json{{"model", "toy"}}.dump(), 400, "request: field 'text' is missing"},
      {"/api/run", json{{"model", "toy"}, {"text", 5}}.dump(), 400, "expected a string"},
      {"/api/run", json{{"model", "toy"}, {"text", long_prompt}}.dump(), 400, "longer than model \"toy\"'s context of 64"},
      {"/api/run", json{{"model", "nope"}, {"text", "hi"}}.dump(), 404, "unknown model"},
      {"/api/run", json{{"model", "toy"}, {"text", "hi"}, {"ablate", {{"heads", {{5, 0}}}}}}.dump(), 400, "unknown layer 5"},
      {"/api/ablate", json{{"model", "toy"}, {"text", "hi there"}, {"heads", {{0, 9}}}}.dump(), 400, "unknown head 9"},
      {"/api/ablate", json{{"model", "toy"}, {"text", "hi there"}, {"heads", {{0, 1}}}, {"kind", "max"}}.dump(), 400, "\"zero\" or \"mean\""},
      {"/api/run", json{{"model", "toy"}, {"text", "hi"}, {"top_k", 0}}.dump(), 400, "top_k"},
      {"/api/patch", json{{"model", "toy"}, {"clean", "a b"}, {"corrupted", "a b c"}, {"answer_correct", " b"}, {"answer_incorrect", " c"}}.dump(), 400, "same number of tokens"},
      {"/api/patch", json{{"model", "toy"}, {"clean", "A B"}, {"corrupted", "A C"}, {"answer_correct", " Mary Mary"}, {"answer_incorrect", " C"}}.dump(), 400, "exactly one token"},
      {"/api/patch", json{{"model", "toy"}, {"clean", "A B"}, {"corrupted", "A C"}, {"answer_correct", " B"}, {"answer_incorrect", " C"}, {"target", "mlp"}}.dump(), 400, "patch target"},
      {"/api/steer", json{{"model", "toy"}, {"prompt", "A"}, {"prompt_add", " B"}, {"prompt_sub", " C"}, {"layer", 7}}.dump(), 400, "layer"},
      {"/api/generate", json{{"model", "toy"}, {"prompt", "A"}, {"max_new_tokens", 100000}}.dump(), 400, "max_new_tokens"},
      {"/api/generate", json{{"model", "toy"}, {"prompt", "A"}, {"temperature", -1}}.dump(), 400, "temperature"},
      {"/api/run", json{{"model", "toy"}, {"text", std::string(70 * 1024, 'a')}}.dump(), 413, "too large"},
      {"/api/nothing", "{}", 404, "no such path"},
  };
  for (const auto& c : cases) {
    httplib::Client cli("127.0.0.1", env->port);
    auto res = cli.Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(res) << c.path << " " << c.body.substr(0, 80) << ": no response";
    EXPECT_EQ(res->status, c.status) << c.body.substr(0, 120) << " -> " << res->body;
    auto j = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "error bodies are JSON: " << res->body;
    ASSERT_TRUE(j.contains("error")) << res->body;
    EXPECT_NE(j["error"].get<std::string>().find(c.needle), std::string::npos)
        << "message for " << c.body.substr(0, 80) << " was: " << j["error"];
    EXPECT_EQ(j["error"].get<std::string>().find('\n'), std::string::npos) << "one line";
    EXPECT_EQ(models_status(), 200) << "server still serving after " << c.body.substr(0, 80);
  }
}

TEST_F(LabApi, ConcurrentRequestsOnBothModelsGiveTheSequentialAnswers) {
  const std::vector<json> reqs = {
      {{"model", "toy"}, {"text", kPrompt}, {"attention", false}},
      {{"model", "gpt2"}, {"text", kPrompt}, {"attention", false}},
      {{"model", "toy"}, {"text", kPrompt}, {"attention", false}, {"ablate", {{"heads", {{1, 1}}}}}},
      {{"model", "gpt2"}, {"text", "The cat sat on the mat"}, {"attention", false}, {"ablate", {{"heads", {{0, 1}}}}}},
  };
  std::vector<json> want;
  for (const auto& r : reqs) {
    auto [st, j] = post("/api/run", r);
    ASSERT_EQ(st, 200);
    want.push_back(j);
  }
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < 6; ++i) {
        const size_t k = (w + i) % reqs.size();
        auto [st, j] = post("/api/run", reqs[k]);
        if (st != 200) ++failures;
        else if (j["loss"] != want[k]["loss"] || j["predictions"] != want[k]["predictions"]) ++mismatches;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "concurrent answers differ from sequential ones: hooks leaked between requests";
}

// The lab picks its default model by capability (lab_model.h), not by name or load order; each
// model's default examples use words of its own vocabulary and run; the steering example's
// layer and coefficient change the generation; out-of-vocabulary input keeps its real text.
TEST(LabDefaults, MostCapableModelAndExamplesThatWorkOnIt) {
  at::set_num_threads(1);
  const auto dir = labtest::fresh_temp_dir("defaults");
  labtest::ToySpec mlp;
  mlp.mlp = true;
  mlp.seed = 3;
  mlp.vocab_texts = labtest::mlp_toy_vocab_texts();
  server::Lab lab;
  lab.add_model(labtest::make_toy_model_dir(dir + "/attn/model"), "attn");  // loaded first, larger vocabulary
  lab.add_model(labtest::make_toy_model_dir(dir + "/mlp/model", mlp), "mlp");
  EXPECT_EQ(lab.default_model(), "mlp") << "a model with MLPs outranks an attention-only one";
  const json models = lab.models();
  EXPECT_EQ(models["default_model"], "mlp");
  for (const auto& info : models["models"]) {
    const std::string name = info["name"];
    const json& ex = info["examples"];
    SCOPED_TRACE(name + ": " + ex.dump());
    auto known = [&](const std::string& word) {
      json t = lab.handle("tokenize", {{"model", name}, {"text", word}, {"prepend_bos", false}});
      return t["tokens"].size() == 1 && !t["tokens"][0].contains("oov");
    };
    for (const char* k : {"answer_correct", "answer_incorrect"}) EXPECT_TRUE(known(ex["patching"][k])) << k;
    for (const char* k : {"prompt_add", "prompt_sub"}) EXPECT_TRUE(known(ex["steering"][k])) << k;
    json preq = ex["patching"];
    preq["model"] = name;
    const json pr = lab.handle("patch", preq);
    EXPECT_EQ(pr["recovery"].size(), size_t(info["n_layers"].get<int>()));
    EXPECT_NE(pr["clean_logit_diff"], pr["corrupted_logit_diff"]) << "the example's two prompts differ for the model";
    json sreq = ex["steering"];
    sreq.erase("changes_generation");
    sreq["model"] = name;
    const json sr = lab.handle("steer", sreq);
    EXPECT_TRUE(ex["steering"]["changes_generation"].get<bool>());
    EXPECT_NE(sr["steered"]["tokens"], sr["unsteered"]["tokens"]) << "the default steering example changes the text";
    const json rr = lab.handle("run", {{"model", name}, {"text", ex["prompt"]}, {"attention", false}});
    EXPECT_GT(rr["tokens"].size(), 10u);
  }
  // The MLP toy lacks the built-in words: its examples come from its own vocabulary.
  const json& mex = models["models"][1]["examples"];
  EXPECT_NE(mex["patching"]["answer_correct"], " Mary");
  EXPECT_NE(mex["steering"]["prompt_add"], " Love");
  // Out-of-vocabulary input: the real text and GPT-2 id, flagged; the model reads "other".
  const json r = lab.handle("run", {{"model", "mlp"}, {"text", " Mary went"}, {"attention", false}});
  const auto mary = data::Tokenizer::load_default().encode(" Mary");
  ASSERT_EQ(mary.size(), 1u);
  EXPECT_EQ(r["tokens"][1]["str"], " Mary");
  EXPECT_EQ(r["tokens"][1]["gpt2_id"], mary[0]);
  EXPECT_EQ(r["tokens"][1]["oov"], true);
  const auto vm = models::load_model_dir(dir + "/mlp/model").vocab_map;
  EXPECT_EQ(r["tokens"][1]["id"], vm->other_id());
  // GPT-2 outranks every toy.
  lab.add_model(labtest::make_gpt2_dir(dir + "/gpt2"), "gpt2");
  EXPECT_EQ(lab.default_model(), "gpt2");
}
