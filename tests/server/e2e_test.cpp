// Browser tests of the lab (label e2e): two toy models written with save_model_dir (an
// attention-only one, and one with GPT-2 blocks on a compact vocabulary without the front end's
// built-in example words, as the demo's lab preset), `circuitlab serve` on a free loopback port,
// and tests/server/e2e_lab.mjs driving headless chromium through playwright-core.
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
