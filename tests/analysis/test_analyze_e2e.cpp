// `circuitlab analyze` end to end: the planted induction model saved as a model dir, small
// shards written from repeated random text, the binary run as a user runs it; analysis.json
// checked against ANALYSIS_JSON.md's keys and the planted circuit; --snapshots on a run dir
// with a random and a planted snapshot marks the phase change at the planted one; bad input
// gives one line and exit code 1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/file_io.h"
#include "data/shards.h"
#include "models/model_dir.h"
#include "planted_model.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::analysis {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Runs `circuitlab ARGS` (a shell line); `*out` gets stdout and stderr.
int run(const std::string& args, std::string* out = nullptr) {
  return circuitlab::testing::run_shell(circuitlab::testing::circuitlab_bin() + " " + args, out);
}

class AnalyzeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp = std::make_unique<circuitlab::testing::TempDir>("analysis-e2e");
    root = tmp->path();
    make_dirs(root + "/run/snapshots");
    make_dirs(root + "/data");
    testing::write_repeated_phrase_shards(root + "/data");  // text with repeats, so ICL exists
    models::save_model_dir(testing::planted_model(), root + "/planted");
    models::save_model_dir(testing::planted_model(), root + "/run/snapshots/step_200");
    models::HookedTransformer random_model(testing::planted_config());  // initialised at random
    models::save_model_dir(random_model, root + "/run/snapshots/step_10");
  }
  void TearDown() override { tmp.reset(); }
  std::unique_ptr<circuitlab::testing::TempDir> tmp;
  std::string root;
};

TEST_F(AnalyzeE2E, WritesTheSchemaAndFindsThePlantedCircuit) {
  std::string log;
  ASSERT_EQ(run("analyze --model " + root + "/planted --data " + root + "/data --out " + root +
                    "/a.json --windows 4 --window-len 64 --threads 1 --quiet", &log), 0) << log;
  json j = json::parse(read_file(root + "/a.json"));
  EXPECT_EQ(j["format"], "circuitlab-analysis-v1");
  for (const char* k : {"model_dir", "data_dir", "created_utc", "elapsed_s", "timings_s", "threads", "seed", "config",
                        "vocab", "conventions", "thresholds", "heads", "composition", "bigram", "skip_trigrams",
                        "term_importance", "icl", "attention_samples"})
    EXPECT_TRUE(j.contains(k)) << "missing key " << k;
  ASSERT_EQ(j["heads"].size(), 2u * testing::kPHeads);
  const json& l0h0 = j["heads"][0];
  const json& l1h0 = j["heads"][testing::kPHeads];
  for (const char* k : {"ov_positivity", "qk_positivity", "kcomp_positivity", "prev_token_score", "induction_score",
                        "duplicate_score", "copying_score", "prefix_matching_score", "first_token_score", "labels"})
    EXPECT_TRUE(l1h0.contains(k)) << k;
  EXPECT_TRUE(l0h0["kcomp_positivity"].is_null());
  EXPECT_GT(l0h0["prev_token_score"].get<double>(), 0.9);
  EXPECT_GT(l1h0["induction_score"].get<double>(), 0.8);
  EXPECT_NEAR(l1h0["ov_positivity"].get<double>(), 1.0, 1e-6);
  EXPECT_NE(std::find(l1h0["labels"].begin(), l1h0["labels"].end(), "induction"), l1h0["labels"].end());
  // composition [L][H][L][H], zero where l1 >= l2; the planted pair tops K.
  const json& k = j["composition"]["k"];
  ASSERT_EQ(k.size(), 2u);
  ASSERT_EQ(k[0].size(), size_t(testing::kPHeads));
  EXPECT_EQ(k[1][0][1][0].get<double>(), 0.0);
  const json& top = j["composition"]["top_k"];
  bool found = false;
  for (const auto& t : top)
    if (t["kind"] == "k") {
      EXPECT_EQ(t["h1"], 0);
      EXPECT_EQ(t["h2"], 0);
      found = true;
      break;
    }
  EXPECT_TRUE(found);
  EXPECT_GT(j["composition"]["baseline"]["random_mean"].get<double>(), 0);
  // ICL: repeated phrases make later tokens easier for an induction model.
  EXPECT_LT(j["icl"]["icl_score"].get<double>(), 0);
  EXPECT_TRUE(j["icl"]["adjusted"].get<bool>());
  EXPECT_EQ(j["icl"]["loss_by_position"].size(), 64u);
  // term importance: n_layers + 1 orders whose last loss is the full loss
  ASSERT_EQ(j["term_importance"]["orders"].size(), 3u);
  EXPECT_NEAR(j["term_importance"]["orders"][2]["loss"].get<double>(), j["term_importance"]["full_loss"].get<double>(), 1e-3);
  EXPECT_EQ(j["term_importance"]["per_head"].size(), 2u * testing::kPHeads);
  // bigram: model vs corpus, token objects carry ids and strings
  EXPECT_EQ(j["bigram"]["source"], "direct_path");
  EXPECT_TRUE(j["bigram"]["top1_agreement"].is_number());
  const json& tok = j["bigram"]["rows"][0]["token"];
  EXPECT_TRUE(tok.contains("id") && tok.contains("gpt2_id") && tok.contains("str"));
  EXPECT_TRUE(j["skip_trigrams"].is_null()) << "2-layer model";
  ASSERT_GE(j["attention_samples"].size(), 1u);
  const json& s0 = j["attention_samples"][0];
  const size_t T = s0["tokens"].size();
  EXPECT_EQ(s0["heads"][0]["pattern"].size(), T);
}

TEST_F(AnalyzeE2E, SnapshotsMarkThePhaseChange) {
  std::string log;
  ASSERT_EQ(run("analyze --snapshots " + root + "/run --data " + root + "/data --out " + root +
                    "/p.json --windows 2 --window-len 64 --quiet", &log), 0) << log;
  json j = json::parse(read_file(root + "/p.json"));
  EXPECT_EQ(j["format"], "circuitlab-phase-change-v1");
  ASSERT_EQ(j["snapshots"].size(), 2u);
  EXPECT_EQ(j["snapshots"][0]["step"], 10);
  EXPECT_EQ(j["phase_change"]["step"], 200);
  EXPECT_EQ(j["phase_change"]["layer"], 1);
  EXPECT_EQ(j["phase_change"]["head"], 0);
}

TEST_F(AnalyzeE2E, BadInputIsOneLineAndExitOne) {
  std::string log;
  EXPECT_EQ(run("analyze --model " + root + "/nope --out " + root + "/x.json", &log), 1);
  EXPECT_NE(log.find("circuitlab: error:"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_EQ(run("analyze --model " + root + "/planted --data " + root + "/missing --out " + root + "/x.json", &log), 1);
  EXPECT_NE(log.find("val.bin"), std::string::npos) << log;
  EXPECT_FALSE(file_exists(root + "/x.json"));
}

}  // namespace
}  // namespace circuitlab::analysis
