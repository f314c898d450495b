// Unit tests of reports/analysis_schema.h: every analysis.json and phase-change file the
// fixture writes (0..4 layers, toy and GPT-2) passes, and a wrong type anywhere the report reads
// fails with one message naming the file and the field's path.
#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "reports/analysis_schema.h"
#include "tests/reports/fixture.h"

namespace circuitlab::reports {
namespace {

using nlohmann::json;

TEST(AnalysisSchema, AcceptsEveryFixtureShape) {
  for (int L : {0, 1, 2, 4})
    for (bool gpt2 : {false, true}) {
      testing::FixtureShape s;
      s.n_layers = L;
      s.gpt2 = gpt2;
      std::mt19937 rng(1);
      const json a = testing::make_analysis(s, rng);
      EXPECT_NO_THROW(check_analysis_json(a, "a.json")) << "layers " << L << " gpt2 " << gpt2;
      const json p = testing::make_phase(s, rng);
      EXPECT_NO_THROW(check_phase_change_json(p, "p.json")) << "layers " << L;
    }
  EXPECT_NO_THROW(check_metrics_row(json{{"step", 10}, {"tokens", 4096}, {"train_loss", 5.1}, {"val_loss", nullptr}}, "m:1"));
}

TEST(AnalysisSchema, WrongTypesNameFileAndField) {
  testing::FixtureShape s;
  std::mt19937 rng(1);
  const json base = testing::make_analysis(s, rng);
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& a) { a["heads"] = "oops"; }, "field 'heads' has the wrong type (expected an array)"},
      {[](json& a) { a["heads"][1]["layer"] = "zero"; }, "field 'heads[1].layer'"},
      {[](json& a) { a["heads"][0]["labels"] = {1}; }, "field 'heads[0].labels[]'"},
      {[](json& a) { a["composition"]["k"][0][0][1][2] = "x"; }, "field 'composition.k[0][0][1][2]'"},
      {[](json& a) { a["bigram"]["rows"][0]["model_top"][0]["logprob"] = "x"; }, "field 'bigram.rows[0].model_top[0].logprob'"},
      {[](json& a) { a["icl"]["icl_score"] = "low"; }, "field 'icl.icl_score'"},
      {[](json& a) { a["attention_samples"][0]["heads"][0]["pattern"][1] = 3; }, "field 'attention_samples[0].heads[0].pattern[1]'"},
      {[](json& a) { a["term_importance"]["orders"] = json::object(); }, "field 'term_importance.orders'"},
      {[](json& a) { a["format"] = "circuitlab-phase-change-v1"; }, "field 'format' must be"},
      {[](json& a) { a.erase("config"); }, "field 'config' is missing"},
  };
  for (const auto& [edit, expected] : cases) {
    json a = base;
    edit(a);
    try {
      check_analysis_json(a, "run/analysis.json");
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind("run/analysis.json: ", 0), 0u) << m;
      EXPECT_NE(m.find(expected), std::string::npos) << m;
    }
  }
  EXPECT_THROW(check_metrics_row(json{{"step", "ten"}}, "m.jsonl:3"), Error);
  EXPECT_THROW(check_phase_change_json(json{{"snapshots", {1, 2}}}, "p.json"), Error);
}

}  // namespace
}  // namespace circuitlab::reports
