// Unit tests of the report's SAE section (reports/sae_inputs.h, reports/sae_section.h): the
// eval table, density histogram and feature browser data carry the values of a small
// hand-written cfg.json / eval.json / features.json (sae_fixture.h); a run without sae/ renders
// as before; a bad field in any SAE file fails with one line naming the file and the field,
// before anything is written. The browser itself: reports_e2e_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "reports/report.h"
#include "reports/sae_section.h"
#include "tests/common/temp_dir.h"
#include "tests/reports/fixture.h"
#include "tests/reports/sae_fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace circuitlab::reports;
namespace fx = circuitlab::reports::testing;

namespace {

const std::string kHook = "blocks.1.hook_resid_mid";

const Section* find_section(const Report& r, const std::string& id) {
  for (auto& s : r.sections)
    if (s.id == id) return &s;
  return nullptr;
}

std::string section_html(const Section& s) {
  std::string h;
  for (auto& b : s.blocks) h += b.html;
  return h;
}

// The embedded browser data of a rendered page (the block after `id="<data_id>">`).
json embedded(const std::string& html, const std::string& data_id) {
  const std::string open = "id=\"" + data_id + "\">";
  size_t s = html.find(open);
  if (s == std::string::npos) return nullptr;
  s += open.size();
  return json::parse(html.substr(s, html.find("</script>", s) - s));
}

class SaeReport : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp = std::make_unique<circuitlab::testing::TempDir>("reports-sae");
    root = tmp->path();
    dirs = fx::write_toy_runs(root, false);
    fx::write_sae_dir(dirs[2], fx::sae_cfg(32, 4, kHook), fx::sae_eval(kHook), fx::small_features());
  }
  Report build() {
    runs.clear();
    for (auto& d : dirs) runs.push_back(load_run(d));
    return build_report(runs, nullptr);
  }
  // load_run(dirs[2]) must fail with a message starting `file` and containing `field`.
  void expect_error(const std::string& file, const std::string& field) {
    try {
      load_run(dirs[2]);
      ADD_FAILURE() << "accepted; expected an error naming " << field;
    } catch (const circuitlab::Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind(dirs[2] + "/sae/" + file + ": ", 0), 0u) << m;
      EXPECT_NE(m.find(field), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  std::unique_ptr<circuitlab::testing::TempDir> tmp;
  std::string root;
  std::vector<std::string> dirs;
  std::vector<RunInputs> runs;
};

}  // namespace

TEST_F(SaeReport, RunWithoutSaeRendersAsBefore) {
  fs::remove_all(dirs[2] + "/sae");
  Report plain = build();
  // An sae/ directory without eval.json (training not finished) is not an SAE to report.
  fx::write_sae_dir(dirs[2], fx::sae_cfg(32, 4, kHook), fx::sae_eval(kHook), nullptr);
  fs::remove(dirs[2] + "/sae/eval.json");
  Report partial = build();
  for (const Report* r : {&plain, &partial}) {
    std::vector<std::string> ids;
    for (auto& s : r->sections) ids.push_back(s.id);
    EXPECT_EQ(ids, (std::vector<std::string>{"models", "training", "bigrams", "one-layer", "two-layer", "phase-change", "claims"}));
    EXPECT_TRUE(r->styles.empty());
    EXPECT_EQ(render_html(*r, "/*runtime*/", "t").find("sae-"), std::string::npos);
  }
  EXPECT_EQ(specs_by_id(plain), specs_by_id(partial));
}

TEST_F(SaeReport, SectionCarriesTheValuesOfEvalAndFeatures) {
  Report rep = build();
  std::vector<std::string> ids;
  for (auto& s : rep.sections) ids.push_back(s.id);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[ids.size() - 2], "sae-attn2l") << "the SAE section comes after the paper's sections, before the claims";
  const Section* s = find_section(rep, "sae-attn2l");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->title, "SAE of attn2l: features at " + kHook);
  const std::string h = section_html(*s);
  // eval.json's numbers, formatted; cfg.json's architecture and sizes.
  for (const char* v : {"0.6713", "0.9102", "0.8589", "1.88", "25.00%", "50.00%", "0.00%", "16,384", "topk (k = 2)", "4 × 32",
                        "5.4173 / 5.5692 / 7.1085 nats", "W_dec·ln_final·W_U", "2,000", "1 of 4"})
    EXPECT_NE(h.find(v), std::string::npos) << v;
  // A changed value in eval.json shows up, the old one is gone.
  json e = fx::sae_eval(kHook);
  e["explained_variance"] = 0.123456;
  circuitlab::write_file_atomic(dirs[2] + "/sae/eval.json", e.dump());
  const std::string h2 = section_html(*find_section(build(), "sae-attn2l"));
  EXPECT_NE(h2.find("0.1235"), std::string::npos);
  EXPECT_EQ(h2.find("0.6713"), std::string::npos);
  EXPECT_FALSE(rep.styles.empty());
}

TEST_F(SaeReport, DensityHistogramIsTheFilesHistogram) {
  RunInputs r = load_run(dirs[2]);
  auto f = fig_sae_density(r);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, "sae-density-attn2l");
  const json& v = f->spec["data"]["values"];
  const json counts = fx::small_features()["density_histogram"]["counts"];
  ASSERT_EQ(v.size(), counts.size());
  for (size_t b = 0; b < v.size(); ++b) {
    EXPECT_EQ(v[b]["latents"], counts[b]) << b;
    EXPECT_DOUBLE_EQ(v[b]["lo"].get<double>(), -5.0 + 0.5 * b);
    EXPECT_DOUBLE_EQ(v[b]["hi"].get<double>(), -4.5 + 0.5 * b);
  }
  EXPECT_NE(f->caption.find("1 dead latents"), std::string::npos) << f->caption;
}

TEST_F(SaeReport, BrowserDataIsTheFilesLatentsTrimmedAndRounded) {
  RunInputs r = load_run(dirs[2]);
  std::vector<std::string> notes;
  json d = feature_browser_data(r, SaeEmbedLimits{}, &notes);
  ASSERT_EQ(d["latents"].size(), 4u);
  EXPECT_EQ(d["tokens"], 2000);
  EXPECT_EQ(d["hook"], kHook);
  const json& strs = d["strs"];
  const json& c = d["latents"][0];
  EXPECT_EQ(c["l"], " cat / cats → meow");
  EXPECT_DOUBLE_EQ(c["d"].get<double>(), 0.01235);  // 4 significant digits
  EXPECT_DOUBLE_EQ(c["mx"].get<double>(), 4.568);
  EXPECT_EQ(c["n"], 24);
  EXPECT_EQ(c["h"]["f"], 10);
  EXPECT_EQ(c["h"]["c"], json({1, 3, 8, 5, 3}));
  ASSERT_EQ(c["top"].size(), 2u);
  const json& ex = c["top"][0];
  ASSERT_EQ(ex["t"].size(), 5u);  // before 12 / after 4 keep this whole context
  EXPECT_EQ(strs[ex["t"][ex["p"].get<int>()].get<int>()], " cat");
  EXPECT_EQ(ex["v"], json({0.0, 0.0, 0.5123, 4.568, 1.0}));
  EXPECT_EQ(c["ntop"], 2);
  json peaks = json::array();
  for (auto& p : c["pk"]) peaks.push_back(strs[p.get<int>()]);
  EXPECT_EQ(peaks, json({" cat", " cats"}));
  ASSERT_EQ(c["q"].size(), 1u);
  EXPECT_DOUBLE_EQ(c["q"][0]["q"].get<double>(), 0.5);
  EXPECT_EQ(strs[c["pro"][0][0].get<int>()], " meow");
  EXPECT_DOUBLE_EQ(c["pro"][0][1].get<double>(), 0.8123);
  EXPECT_EQ(strs[c["sup"][0][0].get<int>()], " bark");
  EXPECT_DOUBLE_EQ(c["sup"][0][1].get<double>(), -0.6123);
  EXPECT_EQ(c["nb"], json::array({json::array({2, 0.4123})}));
  EXPECT_TRUE(d["latents"][1]["mn"].is_null());
  EXPECT_TRUE(d["latents"][1]["top"].empty());
  EXPECT_TRUE(notes.empty()) << notes[0];

  // Tight limits: one example per latent, contexts cut around the peak, and a note that says so.
  SaeEmbedLimits tight;
  tight.max_context_tokens = 10;
  tight.before = 1;
  tight.after = 0;
  json t = feature_browser_data(r, tight, &notes);
  const json& tc = t["latents"][0];
  ASSERT_EQ(tc["top"].size(), 1u);
  EXPECT_EQ(tc["ntop"], 2);
  EXPECT_EQ(tc["top"][0]["t"].size(), 2u);  // " black", " cat"
  EXPECT_EQ(tc["top"][0]["p"], 1);
  EXPECT_EQ(t["strs"][tc["top"][0]["t"][1].get<int>()], " cat");
  EXPECT_EQ(tc["top"][0]["v"], json({0.5123, 4.568}));
  EXPECT_EQ(tc["pk"].size(), 2u) << "search still matches the peak tokens of every top example";
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("first 1 of up to 2 top examples"), std::string::npos) << notes[0];
}

TEST_F(SaeReport, PageEmbedsTheBrowserSafely) {
  Report rep = build();
  std::string html = render_html(rep, "/*runtime*/", "t");
  EXPECT_NE(html.find("<div class=\"sae-browser\" id=\"sae-attn2l-browser\" data-data=\"sae-attn2l-data\">"), std::string::npos);
  EXPECT_NE(html.find("class=\"sae-search\""), std::string::npos);
  EXPECT_EQ(html.find("\"</script>\""), std::string::npos) << "a token string ended the data block";
  json d = embedded(html, "sae-attn2l-data");
  ASSERT_TRUE(d.is_object());
  const json& strs = d["strs"];
  EXPECT_NE(std::find(strs.begin(), strs.end(), json("</script>")), strs.end());
  EXPECT_EQ(d["latents"][2]["l"], "</script> / <b> → &");
  EXPECT_NE(html.find("table.sae-eval"), std::string::npos);  // the section's CSS
  EXPECT_TRUE(specs_by_id(rep).contains("sae-density-attn2l"));
}

TEST_F(SaeReport, WithoutFeaturesJsonTheTableAndANote) {
  fs::remove(dirs[2] + "/sae/features.json");
  Report rep = build();
  const Section* s = find_section(rep, "sae-attn2l");
  ASSERT_NE(s, nullptr);
  const std::string h = section_html(*s);
  EXPECT_NE(h.find("0.6713"), std::string::npos);
  EXPECT_NE(h.find("No <code>features.json</code>"), std::string::npos);
  EXPECT_EQ(h.find("sae-browser"), std::string::npos);
  EXPECT_FALSE(specs_by_id(rep).contains("sae-density-attn2l"));
}

TEST_F(SaeReport, BadSaeFilesNameTheFileAndField) {
  const json good = fx::small_features();
  const std::vector<std::pair<std::function<void(json&)>, std::string>> feature_cases = {
      {[](json& f) { f["format"] = "circuitlab-analysis-v1"; }, "field 'format' must be"},
      {[](json& f) { f.erase("latents"); }, "field 'latents' is missing"},
      {[](json& f) { f["latents"][0]["top"][1]["acts"] = {0.0, 3.25}; }, "field 'latents[0].top[1].acts' has 2 entries but strs has 3"},
      {[](json& f) { f["latents"][0]["top"][0]["peak"] = 5; }, "field 'latents[0].top[0].peak' must index the context"},
      {[](json& f) { f["latents"][2]["index"] = 3; }, "field 'latents[2].index' must be 2"},
      {[](json& f) { f["latents"][3]["promoted"][0]["value"] = "big"; }, "field 'latents[3].promoted[0].value' has the wrong type"},
      {[](json& f) { f["latents"][0]["quantiles"][0]["strs"][1] = 7; }, "field 'latents[0].quantiles[0].strs[]'"},
      {[](json& f) { f["density_histogram"]["counts"][2] = 0.5; }, "field 'density_histogram.counts[2]'"},
      {[](json& f) { f["latents"].erase(3); }, "field 'latents' has 3 entries but sae.d_sae is 4"},
      {[](json& f) { f["sae"]["hook_name"] = "blocks.0.hook_resid_pre"; }, "field 'sae.hook_name' is \"blocks.0.hook_resid_pre\""},
  };
  for (const auto& [edit, expected] : feature_cases) {
    json f = good;
    edit(f);
    circuitlab::write_file_atomic(dirs[2] + "/sae/features.json", f.dump());
    expect_error("features.json", expected);
  }
  circuitlab::write_file_atomic(dirs[2] + "/sae/features.json", "{\"format\": ");
  expect_error("features.json", "not valid JSON");
  circuitlab::write_file_atomic(dirs[2] + "/sae/features.json", good.dump());

  json e = fx::sae_eval(kHook);
  e["l0"] = "32";
  circuitlab::write_file_atomic(dirs[2] + "/sae/eval.json", e.dump());
  expect_error("eval.json", "field 'l0' has the wrong type");
  e.erase("l0");
  circuitlab::write_file_atomic(dirs[2] + "/sae/eval.json", e.dump());
  expect_error("eval.json", "field 'l0' is missing");
  circuitlab::write_file_atomic(dirs[2] + "/sae/eval.json", fx::sae_eval(kHook).dump());

  json c = fx::sae_cfg(32, 8, kHook);  // another SAE's cfg: 8 latents
  circuitlab::write_file_atomic(dirs[2] + "/sae/cfg.json", c.dump());
  expect_error("features.json", "field 'sae.d_sae' is 4 but");
  c["d_sae"] = "four";
  circuitlab::write_file_atomic(dirs[2] + "/sae/cfg.json", c.dump());
  expect_error("cfg.json", "field 'd_sae' has the wrong type");
  fs::remove(dirs[2] + "/sae/cfg.json");
  expect_error("cfg.json", "missing");
}

TEST_F(SaeReport, BadFeaturesJsonWritesNothing) {
  json f = fx::small_features();
  f["latents"][1]["fired"] = -0.5;
  circuitlab::write_file_atomic(dirs[2] + "/sae/features.json", f.dump());
  ReportOptions o;
  o.runs = dirs;
  o.out = root + "/report";
  o.svg = false;
  try {
    write_report(o);
    ADD_FAILURE() << "accepted a bad features.json";
  } catch (const circuitlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("features.json: field 'latents[1].fired'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root + "/report/index.html"));
}

TEST(SaeSig4, RoundsToFourSignificantDigits) {
  EXPECT_DOUBLE_EQ(sig4(4.56789), 4.568);
  EXPECT_DOUBLE_EQ(sig4(0.000123456), 0.0001235);
  EXPECT_DOUBLE_EQ(sig4(-12345.6), -12350.0);
  EXPECT_DOUBLE_EQ(sig4(0.0), 0.0);
  EXPECT_DOUBLE_EQ(sig4(1.0), 1.0);
}
