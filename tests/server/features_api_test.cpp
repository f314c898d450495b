// API tests of the lab's Features panel over real HTTP on loopback: a toy model with MLPs and two
// tiny SAEs written by models::save_sae (one beside the model with a hand-written features.json,
// loaded by default; one without), against C++ references: per-token latents = encode at the
// hook; feature steering = the decoder row added with run_with_hooks; clamping a latent to its
// own value changes nothing; ablating every latent leaves the error term + b_dec; pages, search,
// registry rules and the 4xx cases.
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "analysis/sae_interventions.h"
#include "core/error.h"
#include "server/http_server.h"
#include "server/lab.h"
#include "tests/common/all_close.h"
#include "tests/server/lab_fixtures.h"

using nlohmann::json;
using namespace circuitlab;
using circuitlab::testing::all_close;

namespace {

const char* kHook = "blocks.1.hook_resid_mid";
const char* kPlainHook = "blocks.0.hook_resid_pre";
const char* kPrompt = "When Alice and Bob went to the store, Bob gave a drink to";

struct FeaturesEnv {
  std::string dir;
  std::unique_ptr<server::Lab> lab;
  std::unique_ptr<server::HttpServer> http;
  std::thread thread;
  int port = 0;
  models::LoadedModel lab_model;  // loaded independently, for C++ references
  std::unique_ptr<models::SparseAutoencoder> sae, plain;
  data::Tokenizer tok = data::Tokenizer::load_default();
};
FeaturesEnv* env = nullptr;

std::pair<int, json> post(const std::string& path, const json& body) {
  httplib::Client cli("127.0.0.1", env->port);
  cli.set_read_timeout(120, 0);
  auto res = cli.Post(path.c_str(), body.dump(), "application/json");
  if (!res) return {-1, json()};
  return {res->status, json::parse(res->body, nullptr, false)};
}

std::vector<int64_t> prompt_ids(const std::string& text) {
  const auto& vm = *env->lab_model.vocab_map;
  std::vector<int64_t> ids{vm.to_compact(data::kEndOfText)};
  for (int32_t g : env->tok.encode(text)) ids.push_back(vm.to_compact(g));
  return ids;
}
torch::Tensor tokens_of(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }

// The activation at the SAE's hook [T, d] and its latents [T, S], computed here.
std::pair<torch::Tensor, torch::Tensor> act_and_latents(const models::SparseAutoencoder& sae, const std::vector<int64_t>& ids) {
  torch::NoGradGuard ng;
  auto [logits, cache] = models::run_with_cache(env->lab_model.model, tokens_of(ids));
  auto x = cache.at(sae.cfg.hook_name)[0];  // [T, d]
  return {x, sae.encode(x)};
}

class FeaturesApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    env = new FeaturesEnv();
    env->dir = labtest::fresh_temp_dir("features");
    labtest::ToySpec spec;
    spec.mlp = true;
    spec.seed = 3;
    spec.vocab_texts = labtest::mlp_toy_vocab_texts();
    const auto lab_dir = labtest::make_toy_model_dir(env->dir + "/lab/model", spec);
    const auto toy_dir = labtest::make_toy_model_dir(env->dir + "/toy/model");
    env->sae = std::make_unique<models::SparseAutoencoder>(labtest::make_toy_sae_dir(env->dir + "/lab/sae", kHook, 64));
    labtest::write_features_json(env->dir + "/lab/sae/features.json", *env->sae, env->dir + "/lab/sae",
                                 {{3, {" Alice / Bob \u2192 drink", {" went", " to", " Alice"}, 2, {" drink"}, 0.02, 3.0}},
                                  {5, {" the \u2192 cat", {" sat", " on", " the"}, 2, {" cat", " mat"}, 0.05, 2.0}},
                                  {9, {" store \u2192 drink", {" the", " store"}, 1, {" Alice", " Bob"}, 0.01, 1.5}},
                                  {7, {"dead", {}, 0, {}, 0.0, 0.0}}});
    env->plain = std::make_unique<models::SparseAutoencoder>(labtest::make_toy_sae_dir(
        env->dir + "/plain", kPlainHook, 64, 16, 0, 5, models::SaeArchitecture::Standard));
    env->lab = std::make_unique<server::Lab>();
    ASSERT_EQ(env->lab->add_model(lab_dir), "lab");
    ASSERT_EQ(env->lab->add_model(toy_dir), "toy");
    ASSERT_EQ(env->lab->add_default_saes(), std::vector<std::string>{"sae"}) << "the SAE beside runs/lab/model";
    ASSERT_EQ(env->lab->add_sae(env->dir + "/plain", "lab"), "plain");
    server::ServeOptions so;
    so.port = 0;
    env->http = std::make_unique<server::HttpServer>(*env->lab, so);
    env->port = env->http->bind();
    env->thread = std::thread([] { env->http->listen(); });
    env->lab_model = models::load_model_dir(lab_dir);
  }
  static void TearDownTestSuite() {
    env->http->stop();
    env->thread.join();
    delete env;
    env = nullptr;
  }
};

TEST_F(FeaturesApi, ModelsListEachModelsSaes) {
  httplib::Client cli("127.0.0.1", env->port);
  auto res = cli.Get("/api/models");
  ASSERT_TRUE(res);
  auto j = json::parse(res->body);
  ASSERT_EQ(j["models"].size(), 2u);
  const auto& saes = j["models"][0]["saes"];
  ASSERT_EQ(saes.size(), 2u) << saes.dump();
  EXPECT_EQ(saes[0]["name"], "sae");
  EXPECT_EQ(saes[0]["hook"], kHook);
  EXPECT_EQ(saes[0]["d_sae"], 32);
  EXPECT_EQ(saes[0]["architecture"], "topk");
  EXPECT_EQ(saes[0]["has_features"], true);
  EXPECT_EQ(saes[1]["name"], "plain");
  EXPECT_EQ(saes[1]["architecture"], "standard");
  EXPECT_EQ(saes[1]["has_features"], false);
  EXPECT_TRUE(j["models"][1]["saes"].empty()) << "the attention-only toy serves no SAE";
}

TEST_F(FeaturesApi, AnSaeServesTheOneModelItFits) {
  // plain reads blocks.0.hook_resid_pre of width 64: both toys have it, so it must be named.
  try {
    env->lab->add_sae(env->dir + "/plain");
    FAIL() << "an SAE fitting two models needs one named";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fits several loaded models"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("@MODEL"), std::string::npos) << e.what();
  }
  labtest::make_toy_sae_dir(env->dir + "/narrow", kHook, 32);
  try {
    env->lab->add_sae(env->dir + "/narrow");
    FAIL() << "an SAE of the wrong width fits no model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fits no loaded model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("d_in 32"), std::string::npos) << e.what();
  }
  // The same dir again is the same SAE; another dir of the same basename gets its model as a prefix.
  EXPECT_EQ(env->lab->add_sae(env->dir + "/lab/sae/"), "sae");
  std::filesystem::create_directories(env->dir + "/copy");
  std::filesystem::copy(env->dir + "/lab/sae", env->dir + "/copy/sae", std::filesystem::copy_options::recursive);
  EXPECT_EQ(env->lab->add_sae(env->dir + "/copy/sae"), "lab/sae");
}

TEST_F(FeaturesApi, PerTokenLatentsAreTheTopKOfEncodeAtTheHook) {
  auto [st, j] = post("/api/features/tokens", json{{"sae", "sae"}, {"text", kPrompt}, {"k", 3}});
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["model"], "lab") << "an SAE request goes to the SAE's model";
  const auto ids = prompt_ids(kPrompt);
  auto [x, f] = act_and_latents(*env->sae, ids);
  ASSERT_EQ(j["latents"].size(), ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    const auto& row = j["latents"][t];
    auto [v, i] = f[int64_t(t)].topk(3);
    const auto firing = std::min<int64_t>(3, (f[int64_t(t)] > 0).sum().item<int64_t>());
    ASSERT_EQ(int64_t(row.size()), firing) << "the top 3, firing ones only, at token " << t;
    for (size_t r = 0; r < row.size(); ++r) {
      EXPECT_EQ(row[r]["index"], i[int64_t(r)].item<int64_t>()) << "token " << t << " rank " << r;
      EXPECT_NEAR(row[r]["act"].get<double>(), v[int64_t(r)].item<double>(), 1e-4);
      EXPECT_EQ(row[r]["label"], env->lab->handle("features/page", {{"sae", "sae"}, {"index", row[r]["index"]}})["latent"]["label"]);
    }
    EXPECT_EQ(j["l0"][t], (f[int64_t(t)] > 0).sum().item<int64_t>());
  }
  auto [st2, j2] = post("/api/features/tokens", json{{"sae", "plain"}, {"text", kPrompt}});
  ASSERT_EQ(st2, 200) << j2.dump();
  EXPECT_EQ(j2["has_features"], false);
  for (const auto& row : j2["latents"])
    for (const auto& l : row) EXPECT_FALSE(l.contains("label")) << "no features.json, no labels";
}

// Steering with a feature through the API = W_dec[F]·c added at the hook by a hook written here.
TEST_F(FeaturesApi, FeatureSteeringEqualsAddingTheDecoderRowWithRunWithHooks) {
  const int64_t F = 5;
  const double c = 300.0;  // the toy's residual stream at this hook has norm ~200 per token
  json req = {{"prompt", kPrompt}, {"feature", {{"sae", "sae"}, {"index", F}}}, {"coefficient", c},
              {"max_new_tokens", 8}, {"temperature", 1.0}, {"seed", 3}};
  auto [st, j] = post("/api/steer", req);
  ASSERT_EQ(st, 200) << j.dump();
  const torch::Tensor row = env->sae->W_dec[F].clone();
  models::HookFn add_row = [&](const torch::Tensor& act, const std::string&) {
    return std::optional<torch::Tensor>(act + c * row);  // act [B, T, d]
  };
  const auto ids = prompt_ids(kPrompt);
  analysis::SamplingParams sp;
  sp.max_new_tokens = 8;
  sp.temperature = 1.0;
  sp.seed = 3;
  const auto plain = analysis::generate(env->lab_model.model, ids, sp);
  const auto steered = analysis::generate(env->lab_model.model, ids, sp, {{kHook, add_row}});
  std::vector<int64_t> api_plain, api_steered;
  for (const auto& t : j["unsteered"]["tokens"]) api_plain.push_back(t["id"]);
  for (const auto& t : j["steered"]["tokens"]) api_steered.push_back(t["id"]);
  EXPECT_EQ(api_plain, plain);
  EXPECT_EQ(api_steered, steered);
  EXPECT_NE(steered, plain) << "a decoder row at coefficient 300 moves this toy";
  // Same logits: the API's hook against the one written here, and the API's reported change.
  torch::NoGradGuard ng;
  auto clean = env->lab_model.model->forward(tokens_of(ids))[0];
  auto mine = models::run_with_hooks(env->lab_model.model, tokens_of(ids), {{kHook, add_row}})[0];
  auto lab = models::run_with_hooks(env->lab_model.model, tokens_of(ids),
                                    {{kHook, analysis::sae_steering_hook(*env->sae, F, c)}})[0];
  EXPECT_TRUE(all_close(lab, mine, 1e-5, 1e-5, "steered logits"));
  EXPECT_NEAR(j["max_logit_change"].get<double>(), (mine - clean).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(j["feature"]["label"], " the \u2192 cat");
  EXPECT_EQ(j["hook"], kHook);
  EXPECT_NEAR(j["vector_norms"][0].get<double>(), 1.0, 1e-4) << "unit-norm decoder rows";
}

TEST_F(FeaturesApi, ClampingALatentToItsObservedValueReproducesTheCleanLogits) {
  const auto ids = prompt_ids(kPrompt);
  auto [x, f] = act_and_latents(*env->sae, ids);
  const int64_t p = int64_t(ids.size()) - 2;
  const int64_t F = f[p].argmax().item<int64_t>();
  const double v = f[p][F].item<double>();
  ASSERT_GT(v, 0.0);
  torch::NoGradGuard ng;
  auto clean = env->lab_model.model->forward(tokens_of(ids))[0];
  auto clamped = models::run_with_hooks(env->lab_model.model, tokens_of(ids),
                                        {{kHook, analysis::sae_clamp_hook(*env->sae, {{F, v}}, p)}})[0];
  EXPECT_TRUE(all_close(clamped, clean, 1e-4, 1e-4, "logits clamped to the observed value"));
  // Clamping every latent to its own value at every position: still nothing changes.
  models::HookFn all_own = [&](const torch::Tensor& act, const std::string& n) {
    std::vector<analysis::LatentClamp> cl;
    for (int64_t i = 0; i < env->sae->cfg.d_sae; ++i) cl.push_back({i, f[p][i].item<double>()});
    return analysis::sae_clamp_hook(*env->sae, cl, p)(act, n);
  };
  EXPECT_TRUE(all_close(models::run_with_hooks(env->lab_model.model, tokens_of(ids), {{kHook, all_own}})[0], clean,
                        1e-4, 1e-4, "every latent clamped to its own value"));
  // Through the API: same prompt, value = the observed one at position p.
  auto [st, j] = post("/api/features/clamp", json{{"prompt", kPrompt}, {"feature", {{"sae", "sae"}, {"index", F}}},
                                                  {"value", v}, {"position", p}, {"max_new_tokens", 6}, {"seed", 1}});
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_LE(j["max_logit_change"].get<double>(), 1e-4);
  EXPECT_EQ(j["steered"]["tokens"], j["unsteered"]["tokens"]);
  EXPECT_NEAR(j["observed"][p].get<double>(), v, 1e-4);
  // A large value does change them.
  auto [st2, j2] = post("/api/features/clamp", json{{"prompt", kPrompt}, {"feature", {{"sae", "sae"}, {"index", F}}},
                                                    {"value", 40.0}, {"max_new_tokens", 6}, {"seed", 1}});
  ASSERT_EQ(st2, 200) << j2.dump();
  EXPECT_GT(j2["max_logit_change"].get<double>(), 0.1);
}

TEST_F(FeaturesApi, AblatingEveryLatentLeavesTheErrorTermPlusBdec) {
  const auto ids = prompt_ids(kPrompt);
  for (const auto* sae : {env->sae.get(), env->plain.get()}) {
    auto [x, f] = act_and_latents(*sae, ids);
    std::vector<analysis::LatentClamp> all;
    for (int64_t i = 0; i < sae->cfg.d_sae; ++i) all.push_back({i, 0.0});
    auto out = *analysis::sae_clamp_hook(*sae, all)(x.unsqueeze(0), sae->cfg.hook_name);  // [1, T, d]
    auto error_term = x - sae->decode(f);
    EXPECT_TRUE(all_close(out[0], error_term + sae->b_dec, 1e-4, 1e-5, "x with every latent ablated"));
  }
  // One latent that fires on the prompt: ablating it changes the logits; one that never fires: nothing.
  auto [x, f] = act_and_latents(*env->sae, ids);
  const auto fired = (f > 0).sum(0);  // [S]
  const int64_t on = fired.argmax().item<int64_t>(), off = fired.argmin().item<int64_t>();
  ASSERT_EQ(fired[off].item<int64_t>(), 0) << "some latent is silent on this prompt";
  auto [s1, j1] = post("/api/features/ablate", json{{"prompt", kPrompt}, {"feature", {{"sae", "sae"}, {"index", on}}}, {"max_new_tokens", 4}});
  auto [s2, j2] = post("/api/features/ablate", json{{"prompt", kPrompt}, {"feature", {{"sae", "sae"}, {"index", off}}}, {"max_new_tokens", 4}});
  ASSERT_EQ(s1, 200) << j1.dump();
  ASSERT_EQ(s2, 200) << j2.dump();
  EXPECT_GT(j1["max_logit_change"].get<double>(), 1e-3);
  EXPECT_LE(j2["max_logit_change"].get<double>(), 1e-5) << "the error term is kept: a silent latent ablated is a no-op";
  EXPECT_EQ(j2["steered"]["tokens"], j2["unsteered"]["tokens"]);
  EXPECT_EQ(j1["intervention"], "ablate");
  EXPECT_EQ(j1["value"], 0.0);
}

TEST_F(FeaturesApi, FeaturePageAndSearchReadFeaturesJson) {
  auto [st, j] = post("/api/features/page", json{{"sae", "sae"}, {"index", 3}});
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["latent"]["label"], " Alice / Bob \u2192 drink");
  EXPECT_EQ(j["latent"]["top"][0]["strs"][2], " Alice");
  EXPECT_EQ(j["neighbors"][0]["index"], 4);
  EXPECT_EQ(j["neighbors"][0]["label"], "latent 4");
  EXPECT_NEAR(j["decoder_norm"].get<double>(), 1.0, 1e-4);
  EXPECT_TRUE(j["histogram_bins"].contains("width"));
  // "ALICE": the label part and peak of 3 first, then 9 (promoted first, context); never dead ones.
  auto [s2, r] = post("/api/features/search", json{{"sae", "sae"}, {"query", "  ALICE "}});
  ASSERT_EQ(s2, 200) << r.dump();
  ASSERT_EQ(r["results"].size(), 2u) << r.dump();
  EXPECT_EQ(r["results"][0]["index"], 3);
  EXPECT_EQ(r["results"][0]["matched"], json({"label", "top examples"}));
  EXPECT_EQ(r["results"][1]["index"], 9);
  EXPECT_GT(r["results"][0]["score"].get<double>(), r["results"][1]["score"].get<double>());
  auto [s3, r3] = post("/api/features/search", json{{"sae", "sae"}, {"query", "latent"}, {"limit", 5}});
  ASSERT_EQ(s3, 200);
  EXPECT_EQ(r3["results"].size(), 5u) << "limited";
  auto [s4, r4] = post("/api/features/search", json{{"sae", "sae"}, {"query", "dead"}});
  EXPECT_TRUE(r4["results"].empty()) << r4.dump();
  auto [s5, r5] = post("/api/features/search", json{{"sae", "sae"}, {"query", "mat"}});
  ASSERT_EQ(r5["results"].size(), 1u);
  EXPECT_EQ(r5["results"][0]["matched"], json({"promoted"}));
}

TEST_F(FeaturesApi, BadFeatureRequestsGet4xxNamingTheField) {
  struct Case {
    std::string path;
    json body;
    int status;
    std::string needle;
  };
  const json f5 = {{"sae", "sae"}, {"index", 5}};
  const std::vector<Case> cases = {
      {"/api/steer", {{"prompt", "A"}, {"feature", {{"sae", "nope"}, {"index", 1}}}}, 404, "field 'feature.sae' names no loaded SAE \"nope\""},
      {"/api/steer", {{"prompt", "A"}, {"feature", {{"sae", "sae"}, {"index", 32}}}}, 400, "field 'feature.index' is out of range"},
      {"/api/steer", {{"prompt", "A"}, {"feature", {{"sae", "sae"}, {"index", -1}}}}, 400, "feature.index"},
      {"/api/steer", {{"prompt", "A"}, {"feature", {{"sae", "sae"}}}}, 400, "field 'feature.index' is missing"},
      {"/api/steer", {{"prompt", "A"}, {"feature", 5}}, 400, "field 'feature' must be an object"},
      {"/api/steer", {{"model", "toy"}, {"prompt", "A"}, {"feature", f5}}, 400, "field 'feature.sae' names SAE \"sae\" on hook \"blocks.1.hook_resid_mid\", which model \"toy\" lacks"},
      {"/api/steer", {{"prompt", "A"}, {"feature", f5}, {"prompt_add", " B"}}, 400, "field 'prompt_add' cannot be given together with \"feature\""},
      {"/api/steer", {{"prompt", "A"}, {"feature", f5}, {"layer", 1}}, 400, "field 'layer'"},
      {"/api/features/clamp", {{"prompt", "A"}, {"feature", f5}}, 400, "field 'value' is missing"},
      {"/api/features/clamp", {{"prompt", "A"}, {"feature", f5}, {"value", 1}, {"position", 9}}, 400, "field 'position' is past"},
      {"/api/features/ablate", {{"prompt", "A"}}, 400, "field 'feature' is missing"},
      {"/api/features/tokens", {{"text", "A"}}, 400, "field 'sae' is missing"},
      {"/api/features/tokens", {{"sae", "sae"}, {"text", "A"}, {"k", 0}}, 400, "'k'"},
      {"/api/features/page", {{"sae", "sae"}, {"index", 99}}, 400, "field 'index' is out of range"},
      {"/api/features/page", {{"sae", "plain"}, {"index", 1}}, 404, "has no features.json"},
      {"/api/features/search", {{"sae", "plain"}, {"query", "a"}}, 404, "circuitlab sae features"},
      {"/api/features/search", {{"sae", "sae"}, {"query", "   "}}, 400, "field 'query' must not be blank"},
      {"/api/features/page", {{"model", "nope"}, {"sae", "sae"}, {"index", 1}}, 404, "unknown model"},
  };
  for (const auto& c : cases) {
    auto [st, j] = post(c.path, c.body);
    EXPECT_EQ(st, c.status) << c.path << " " << c.body.dump() << " -> " << j.dump();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << j.dump();
    const std::string msg = j["error"];
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.body.dump() << " -> " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
  auto [st, j] = post("/api/features/tokens", json{{"sae", "sae"}, {"text", "A"}});
  EXPECT_EQ(st, 200) << "still serving";
}

}  // namespace
