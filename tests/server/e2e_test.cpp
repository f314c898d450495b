// Browser tests of the lab (label e2e): two toy models written with save_model_dir (an
// attention-only one, and one with GPT-2 blocks on a compact vocabulary without the front end's
// built-in example words, as the demo's lab preset), `circuitlab serve` on a free loopback port,
// and tests/server/e2e_lab.mjs driving headless chromium through playwright-core.
// A second test opens the Features panel on a toy with an SAE beside it (e2e_features.mjs).
// Screenshots land in build/test-artifacts/server/.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>

#include "tests/server/lab_fixtures.h"

using namespace circuitlab;

TEST(LabBrowser, AttentionAblationPatchingSteering) {
  const std::string dir = labtest::fresh_temp_dir("e2e");
  labtest::make_toy_model_dir(dir + "/toy/model", /*n_layers=*/2, /*n_heads=*/4);
  labtest::ToySpec lab_spec;
  lab_spec.mlp = true;
  lab_spec.seed = 3;
  lab_spec.vocab_texts = labtest::mlp_toy_vocab_texts();
  labtest::make_toy_model_dir(dir + "/lab/model", lab_spec);
  std::filesystem::create_directories(CIRCUITLAB_ARTIFACTS);
  labtest::ServeProcess serve({"--model", dir + "/toy/model", "--model", dir + "/lab/model", "--threads", "1"},
                              std::string(CIRCUITLAB_ARTIFACTS) + "/serve.log");
  httplib::Client cli("127.0.0.1", serve.port());
  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  ASSERT_NE(page->body.find("app.js"), std::string::npos) << "the built front end is served (web/dist)";
  const std::string url = "http://127.0.0.1:" + std::to_string(serve.port()) + "/";
  const std::string cmd = "timeout 600 '" + std::string(CIRCUITLAB_NODE) + "' '" + labtest::source_dir() +
                          "/tests/server/e2e_lab.mjs' '" + url + "' '" + CIRCUITLAB_ARTIFACTS + "' 2 4 lab ' Mary' 2>&1";
  std::string out;
  const int rc = circuitlab::testing::run_shell(cmd, &out);
  std::printf("%s", out.c_str());
  EXPECT_EQ(rc, 0) << "browser test failed:\n" << out;
  EXPECT_NE(out.find("e2e ok"), std::string::npos);
  for (const char* f : {"01-attention-grid.png", "03-head-zeroed.png", "04-patching-heatmap.png", "05-steering.png"})
    EXPECT_TRUE(std::filesystem::exists(std::string(CIRCUITLAB_ARTIFACTS) + "/" + f)) << f;
  // The server survived the session.
  auto models = cli.Get("/api/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
}

// The Features panel on the lab-like toy (GPT-2 blocks, compact vocabulary) with a TopK SAE beside
// it (<dir>/lab/sae, loaded by default as the demo's is) and a hand-written features.json.
TEST(LabBrowser, FeaturesPanelTokensPageSearchSteer) {
  const std::string dir = labtest::fresh_temp_dir("e2e-features");
  labtest::ToySpec spec;
  spec.mlp = true;
  spec.seed = 3;
  spec.vocab_texts = labtest::mlp_toy_vocab_texts();
  labtest::make_toy_model_dir(dir + "/lab/model", spec);
  const auto sae = labtest::make_toy_sae_dir(dir + "/lab/sae", "blocks.1.hook_resid_mid", 64, 64, 8);
  labtest::write_features_json(dir + "/lab/sae/features.json", sae, dir + "/lab/sae",
                               {{3, {" Alice / Bob \u2192 drink", {" went", " to", " Alice"}, 2, {" drink", " Alice"}, 0.02, 100.0}},
                                {5, {" the \u2192 cat", {" sat", " on", " the"}, 2, {" cat", " mat"}, 0.05, 60.0}},
                                {7, {"dead", {}, 0, {}, 0.0, 0.0}}});
  std::filesystem::create_directories(CIRCUITLAB_ARTIFACTS);
  labtest::ServeProcess serve({"--model", dir + "/lab/model", "--threads", "1"},
                              std::string(CIRCUITLAB_ARTIFACTS) + "/serve-features.log");
  const std::string url = "http://127.0.0.1:" + std::to_string(serve.port()) + "/";
  const std::string cmd = "timeout 600 '" + std::string(CIRCUITLAB_NODE) + "' '" + labtest::source_dir() +
                          "/tests/server/e2e_features.mjs' '" + url + "' '" + CIRCUITLAB_ARTIFACTS +
                          "' 'alice' 'Alice / Bob' 2>&1";
  std::string out;
  const int rc = circuitlab::testing::run_shell(cmd, &out);
  std::printf("%s", out.c_str());
  EXPECT_EQ(rc, 0) << "browser test failed:\n" << out;
  EXPECT_NE(out.find("e2e features ok"), std::string::npos);
  for (const char* f : {"10-features-token.png", "11-features-page.png", "12-features-search.png", "13-features-steer.png"})
    EXPECT_TRUE(std::filesystem::exists(std::string(CIRCUITLAB_ARTIFACTS) + "/" + f)) << f;
}
