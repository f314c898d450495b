// Unit tests of reports/: run-dir loading, Vega-Lite specs carrying analysis.json's values,
// limits on attention data, the claims' verdicts, HTML escaping and the inline page. Inputs
// are generated run dirs (fixture.h). Not the browser: see reports_e2e_test.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "reports/figures.h"
#include "reports/json_access.h"
#include "reports/report.h"
#include "tests/common/temp_dir.h"
#include "tests/reports/fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace circuitlab::reports;

namespace {

const Figure* find_figure(const Report& r, const std::string& id) {
  for (auto& s : r.sections)
    for (auto& b : s.blocks)
      if (b.has_figure && b.figure.id == id) return &b.figure;
  return nullptr;
}

const Claim* find_claim(const Report& r, const std::string& run, const std::string& topic) {
  for (auto& c : r.claims)
    if (c.run == run && c.topic == topic) return &c;
  return nullptr;
}

// Every data value of a spec (top-level data and layer/concat data), flattened.
void collect_values(const json& spec, std::vector<json>& out) {
  if (spec.is_object()) {
    if (auto d = spec.find("data"); d != spec.end() && d->contains("values"))
      for (auto& v : (*d)["values"]) out.push_back(v);
    for (const char* k : {"layer", "vconcat", "hconcat", "concat"})
      if (auto l = spec.find(k); l != spec.end())
        for (auto& sub : *l) collect_values(sub, out);
    if (auto s = spec.find("spec"); s != spec.end()) collect_values(*s, out);
  }
}

json read_json(const std::string& p) { return json::parse(circuitlab::read_file(p)); }
void write_json(const std::string& p, const json& j) { circuitlab::write_file_atomic(p, j.dump()); }

class ReportsUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp = std::make_unique<circuitlab::testing::TempDir>("reports-unit");
    root = tmp->path();
    dirs = circuitlab::reports::testing::write_toy_runs(root, false);
    gpt2_dir = circuitlab::reports::testing::write_gpt2(root);
  }
  void TearDown() override { tmp.reset(); }
  Report build() {
    runs.clear();
    for (auto& d : dirs) runs.push_back(load_run(d));
    gpt2 = load_run(gpt2_dir, true);
    return build_report(runs, &gpt2);
  }
  std::unique_ptr<circuitlab::testing::TempDir> tmp;
  std::string root, gpt2_dir;
  std::vector<std::string> dirs;
  std::vector<RunInputs> runs;
  RunInputs gpt2;
};

}  // namespace

TEST_F(ReportsUnit, LoadsRunDirectory) {
  RunInputs r = load_run(dirs[2]);
  EXPECT_EQ(r.name, "attn2l");
  EXPECT_EQ(r.shape.n_layers, 2);
  EXPECT_EQ(r.shape.n_heads, 4);
  EXPECT_EQ(r.metrics.size(), 200u);
  EXPECT_FALSE(r.phase.is_null());
  // Parameter count and shape from analysis.json (n_params, config), not from the model's files:
  // the same numbers with the model dir gone.
  int64_t expect = 100 * 32 + 64 * 32 + 32 * 100 + 100 + 2 * (3 * 4 * 32 * 8 + 4 * 8 * 32 + 32);
  EXPECT_EQ(r.n_params, expect);
  fs::remove_all(dirs[2] + "/model");
  RunInputs again = load_run(dirs[2]);
  EXPECT_EQ(again.n_params, expect);
  EXPECT_EQ(again.shape.d_model, 32);
  RunInputs g = load_run(gpt2_dir, true);
  EXPECT_TRUE(g.shape.gpt2);
  EXPECT_EQ(g.shape.n_layers, 12);
  EXPECT_EQ(g.shape.d_head, 64);
  EXPECT_EQ(g.n_params, 124439808) << "GPT-2 small";
}

TEST_F(ReportsUnit, AcceptsABareAnalysisFile) {
  // e.g. --gpt2 runs/gpt2-analysis.json written beside (not into) the HF model dir.
  fs::copy_file(gpt2_dir + "/analysis.json", root + "/gpt2-small.json");
  RunInputs g = load_run(root + "/gpt2-small.json", true);
  EXPECT_EQ(g.name, "gpt2-small");
  EXPECT_TRUE(g.shape.gpt2);  // from analysis.json's "config" (family gpt2)
  EXPECT_EQ(g.shape.n_heads, 12);
  EXPECT_TRUE(g.metrics.empty());
  EXPECT_THROW(load_run(root + "/nothing.json"), circuitlab::Error);
}

TEST_F(ReportsUnit, BadInputsFailWithOneLineNamingTheFile) {
  fs::remove(dirs[1] + "/analysis.json");
  try {
    load_run(dirs[1]);
    FAIL() << "expected an error";
  } catch (const circuitlab::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("attn1l/analysis.json"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  circuitlab::write_file_atomic(dirs[2] + "/analysis.json", "{not json");
  EXPECT_THROW(load_run(dirs[2]), circuitlab::Error);
  circuitlab::write_file_atomic(dirs[0] + "/metrics.jsonl", "{\"step\":1}\n[1,2]\n{\"step\":3}\n");
  EXPECT_THROW(load_run(dirs[0]), circuitlab::Error);
  circuitlab::write_file_atomic(dirs[0] + "/model/config.json", "{\"n_layers\": \"two\"}");
  EXPECT_THROW(load_run(dirs[0]), circuitlab::Error);
  EXPECT_THROW(load_run(root + "/no-such-run"), circuitlab::Error);
}

TEST_F(ReportsUnit, TruncatedLastMetricsLineIsTolerated) {
  std::string m = circuitlab::read_file(dirs[0] + "/metrics.jsonl");
  circuitlab::write_file_atomic(dirs[0] + "/metrics.jsonl", m + "{\"step\": 99");
  EXPECT_EQ(load_run(dirs[0]).metrics.size(), 200u);
}

TEST_F(ReportsUnit, EverySectionInThePapersOrder) {
  Report rep = build();
  std::vector<std::string> ids;
  for (auto& s : rep.sections) ids.push_back(s.id);
  std::vector<std::string> expect = {"models", "training", "bigrams", "one-layer", "two-layer", "phase-change", "gpt2", "claims"};
  EXPECT_EQ(ids, expect);
  for (const char* id : {"loss-curves", "icl-over-training", "loss-by-position", "bigram-stats", "positivity-attn1l",
                         "attention-repeated-random-attn2l", "attention-text-attn2l", "head-scores-attn2l",
                         "composition-attn2l", "kcomp-scatter-attn2l", "term-importance-attn2l", "head-ablation-attn2l",
                         "phase-change-attn2l", "head-scores-gpt2", "composition-gpt2", "attention-repeated-random-gpt2"})
    EXPECT_NE(find_figure(rep, id), nullptr) << id;
}

TEST_F(ReportsUnit, FiguresCarryTheValuesOfAnalysisJson) {
  Report before = build();
  // Change one head's induction score and one term-importance value in analysis.json.
  json a = read_json(dirs[2] + "/analysis.json");
  a["heads"][5]["induction_score"] = 0.123456;
  a["term_importance"]["orders"][2]["marginal_nats"] = 0.777;
  write_json(dirs[2] + "/analysis.json", a);
  Report after = build();

  auto value_of = [](const Figure* f, auto pred) {
    std::vector<json> vals;
    collect_values(f->spec, vals);
    for (auto& v : vals)
      if (pred(v)) return v;
    return json();
  };
  auto is_l1h1_induction = [](const json& v) {
    return v.value("layer", -1) == 1 && v.value("head", -1) == 1 && v.value("score", "") == "induction";
  };
  json old_v = value_of(find_figure(before, "head-scores-attn2l"), is_l1h1_induction);
  json new_v = value_of(find_figure(after, "head-scores-attn2l"), is_l1h1_induction);
  ASSERT_FALSE(new_v.is_null());
  EXPECT_NEAR(new_v["value"].get<double>(), 0.1235, 1e-9);
  EXPECT_NE(old_v["value"], new_v["value"]);

  json ti = value_of(find_figure(after, "term-importance-attn2l"), [](const json& v) { return v.value("order", -1) == 2; });
  EXPECT_DOUBLE_EQ(ti["nats"].get<double>(), 0.777);
  const Claim* c = find_claim(after, "attn2l", "Two-layer: term importance");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->measured.find("0.78"), std::string::npos) << c->measured;
  // Unrelated figures are unchanged.
  EXPECT_EQ(find_figure(before, "composition-attn2l")->spec, find_figure(after, "composition-attn2l")->spec);
}

TEST_F(ReportsUnit, CompositionScaleIsCentredAtTheBaseline) {
  Report rep = build();
  const Figure* f = find_figure(rep, "composition-attn2l");
  ASSERT_NE(f, nullptr);
  double base = runs[2].analysis["composition"]["baseline"]["random_mean"].get<double>();
  const json& scale = f->spec["spec"]["encoding"]["color"]["scale"];
  EXPECT_DOUBLE_EQ(scale["domainMid"].get<double>(), base);
  double lo = scale["domain"][0].get<double>(), hi = scale["domain"][1].get<double>();
  EXPECT_NEAR((lo + hi) / 2, base, 1e-4);
  // Only l1 < l2 pairs are drawn: 4 × 4 per kind for a 2-layer, 4-head model.
  std::vector<json> vals;
  collect_values(f->spec, vals);
  EXPECT_EQ(vals.size(), 3u * 16u);
}

TEST_F(ReportsUnit, AttentionPatternsAreLimitedWithANote) {
  FigureLimits lim;
  lim.max_attention_cells = 2000;
  RunInputs r = load_run(dirs[2]);
  std::vector<std::string> notes;
  auto f = fig_attention(r, r.analysis["attention_samples"][0], lim, &notes);
  ASSERT_TRUE(f.has_value());
  std::vector<json> vals;
  collect_values(f->spec, vals);
  EXPECT_LE(vals.size(), 2000u);
  EXPECT_GT(vals.size(), 500u);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("limited"), std::string::npos);
  EXPECT_NE(f->caption.find("Limited"), std::string::npos);
  // Unlimited: every causal cell of every head, values copied from the pattern.
  auto full = fig_attention(r, r.analysis["attention_samples"][0], FigureLimits{}, nullptr);
  vals.clear();
  collect_values(full->spec, vals);
  size_t T = r.analysis["attention_samples"][0]["tokens"].size();
  EXPECT_EQ(vals.size(), 8 * T * (T + 1) / 2);
  const json& v = vals[T * (T + 1) / 2 + 7];  // head 2 (L0H1), some cell
  int q = v["q"], k = v["k"];
  EXPECT_NEAR(v["w"].get<double>(), r.analysis["attention_samples"][0]["heads"][1]["pattern"][q][k].get<double>(), 5e-4);
}

TEST_F(ReportsUnit, ClaimsFollowTheMeasurements) {
  Report rep = build();
  const Claim* k = find_claim(rep, "attn2l", "Two-layer: K-composition");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->verdict, "reproduced") << k->measured;
  EXPECT_NE(k->measured.find("L0H1"), std::string::npos) << k->measured;

  // Remove the planted K-composition: the verdict must flip.
  json a = read_json(dirs[2] + "/analysis.json");
  for (auto& h1 : a["composition"]["k"][0])
    for (auto& l2 : h1)
      for (auto& v : l2) v = 0.18;
  write_json(dirs[2] + "/analysis.json", a);
  rep = build();
  k = find_claim(rep, "attn2l", "Two-layer: K-composition");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->verdict, "not reproduced") << k->measured;

  // One-layer copying: count follows ov_positivity.
  a = read_json(dirs[1] + "/analysis.json");
  for (auto& h : a["heads"]) h["ov_positivity"] = -0.5;
  a["heads"][0]["ov_positivity"] = 0.9;
  write_json(dirs[1] + "/analysis.json", a);
  rep = build();
  const Claim* c = find_claim(rep, "attn1l", "One-layer: copying");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->measured.find("1 of 4"), std::string::npos) << c->measured;
  EXPECT_EQ(c->verdict, "not reproduced");
}

TEST_F(ReportsUnit, HtmlIsSelfContainedAndEscaped) {
  json a = read_json(dirs[1] + "/analysis.json");
  a["skip_trigrams"]["heads"][0]["entries"][0]["source"]["str"] = "</script><b>x";
  write_json(dirs[1] + "/analysis.json", a);
  Report rep = build();
  std::string html = render_html(rep, "/*runtime*/", "t");
  EXPECT_EQ(html.find("</script><b>x"), std::string::npos);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;b&gt;x"), std::string::npos);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // The spec block is valid JSON with exactly the figures of the report.
  auto s = html.find("id=\"circuitlab-specs\">") + 22;
  auto e = html.find("</script>", s);
  json specs = json::parse(html.substr(s, e - s));
  EXPECT_EQ(specs.size(), specs_by_id(rep).size());
  EXPECT_THROW(render_html(rep, "x</script>y", "t"), circuitlab::Error);
}

TEST_F(ReportsUnit, MissingOptionalInputsAreNotedNotFaked) {
  // A run analysed without --data: no term importance, no ICL, no bigram statistics.
  json a = read_json(dirs[2] + "/analysis.json");
  a["term_importance"] = nullptr;
  a["icl"] = nullptr;
  a["bigram"]["top1_agreement"] = nullptr;
  write_json(dirs[2] + "/analysis.json", a);
  fs::remove(dirs[2] + "/phase_change.json");
  Report rep = build();
  EXPECT_EQ(find_figure(rep, "term-importance-attn2l"), nullptr);
  EXPECT_EQ(find_figure(rep, "phase-change-attn2l"), nullptr);
  EXPECT_EQ(find_claim(rep, "attn2l", "Two-layer: term importance"), nullptr);
  EXPECT_EQ(find_claim(rep, "attn2l", "ICL score"), nullptr);
}
