// End-to-end tests of `circuitlab report`: demo-sized generated runs through the real binary
// (size budget; its time is bench/bench_report.cpp's BM_ReportBinary), the SVG export, the page
// in headless Chromium with the network blocked (browser_check.mjs, which also searches and opens
// a feature of the SAE section; screenshots in <build>/test-artifacts/reports/), a changed value in analysis.json showing up in exactly the
// matching figure, and bad-input errors.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/file_io.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/reports/fixture.h"
#include "tests/reports/sae_fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;
namespace fx = circuitlab::reports::testing;

namespace {

using circuitlab::testing::circuitlab_bin;
using circuitlab::testing::RunResult;
using circuitlab::testing::source_dir;

// Runs a shell command line, stderr merged into `out` (the report prints its summary there).
RunResult run(const std::string& cmd) {
  circuitlab::testing::RunOptions o;
  o.merge_stderr = true;
  return circuitlab::testing::run_shell(cmd, o);
}

std::string bin() { return circuitlab_bin(); }

// <build>/test-artifacts/reports: the binary lives in <build>/apps/.
fs::path artifacts() {
  fs::path p = fs::absolute(bin()).parent_path().parent_path() / "test-artifacts" / "reports";
  fs::create_directories(p);
  return p;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

class ReportsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Per process: ctest runs each test in its own process, possibly in parallel (-j).
    root_ = artifacts() / ("runs-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    dirs_ = fx::write_toy_runs(root_.string(), /*demo=*/true);
    gpt2_ = fx::write_gpt2(root_.string());
    // The demo's SAE: 2048 latents on attn2l's residual stream, 10 top examples of 33 tokens each.
    const std::string hook = "blocks.1.hook_resid_mid";
    fx::write_sae_dir(dirs_[2], fx::sae_cfg(192, 2048, hook), fx::sae_eval(hook), fx::demo_features(2048, 10, 24, 8, 7, hook));
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string report_cmd(const fs::path& out, const std::string& extra = "") {
    std::string c = q(bin()) + " report --runs";
    for (auto& d : dirs_) c += " " + q(d);
    return c + " --gpt2 " + q(gpt2_) + " --out " + q(out.string()) + " --threads 1 " + extra;
  }
  static fs::path root_;
  static std::vector<std::string> dirs_;
  static std::string gpt2_;
};
fs::path ReportsE2E::root_;
std::vector<std::string> ReportsE2E::dirs_;
std::string ReportsE2E::gpt2_;

}  // namespace

TEST_F(ReportsE2E, DemoSizedReportRendersInHeadlessChromiumOffline) {
  fs::path out = artifacts() / "report";
  fs::remove_all(out);
  RunResult p = run(report_cmd(out));
  ASSERT_EQ(p.exit_code, 0) << p.out;
  std::printf("[report] %.2f s wall: %s", p.seconds, p.out.substr(p.out.rfind("report: ")).c_str());
  uintmax_t bytes = fs::file_size(out / "index.html");
  EXPECT_LT(bytes, 10u * 1024 * 1024) << "index.html must stay < 10 MB";

  // One SVG per figure, each a real vega rendering with marks.
  std::string html = circuitlab::read_file((out / "index.html").string());
  size_t n_figs = 0;
  for (size_t pos = 0; (pos = html.find("<div class=\"figure\" data-spec=\"", pos)) != std::string::npos; ++pos) {
    size_t s = pos + 31, e = html.find('"', s);
    std::string id = html.substr(s, e - s);
    fs::path svg = out / "svg" / (id + ".svg");
    ASSERT_TRUE(fs::exists(svg)) << svg;
    std::string text = circuitlab::read_file(svg.string());
    EXPECT_EQ(text.rfind("<svg", 0), 0u) << svg;
    EXPECT_NE(text.find("role-mark"), std::string::npos) << svg;
    ++n_figs;
  }
  EXPECT_GE(n_figs, 20u);

  fs::path shots = artifacts() / "screenshots";
  fs::remove_all(shots);
  RunResult b = run("cd " + q(source_dir()) + " && timeout 300 node tests/reports/browser_check.mjs " + q((out / "index.html").string()) +
               " " + q(shots.string()));
  ASSERT_EQ(b.exit_code, 0) << b.out;
  json r = json::parse(b.out.substr(b.out.rfind("\n{") == std::string::npos ? 0 : b.out.rfind("\n{") + 1));
  EXPECT_EQ(r["figures"].get<size_t>(), n_figs);
  EXPECT_EQ(r["rendered"].get<size_t>(), n_figs);
  EXPECT_TRUE(r["blocked"].empty()) << r["blocked"];
  EXPECT_TRUE(r["non_file_requests"].empty()) << r["non_file_requests"];
  EXPECT_TRUE(r["console_errors"].empty()) << r["console_errors"];
  EXPECT_GE(r["tables"].get<int>(), 5);
  std::printf("[browser] %zu figures rendered in %d ms; screenshots in %s\n", n_figs, r["render_ms"].get<int>(),
              shots.string().c_str());
  EXPECT_TRUE(fs::exists(shots / "report-full.png"));
  EXPECT_TRUE(fs::exists(shots / "fig-composition-attn2l.png"));
  // The SAE's feature browser: searched, a feature opened, its examples highlighted (checks in
  // browser_check.mjs), then a neighbour followed.
  ASSERT_EQ(r["sae"].size(), 1u) << r["sae"];
  const json& sae = r["sae"][0];
  EXPECT_TRUE(sae["ok"].get<bool>()) << sae.dump(1);
  EXPECT_EQ(sae["id"], "sae-attn2l-browser");
  EXPECT_EQ(sae["opened"], sae["target"]["index"]);
  EXPECT_EQ(sae["peaks"], sae["target"]["examples"]);
  EXPECT_GT(sae["shaded"].get<int>(), 0);
  EXPECT_TRUE(fs::exists(shots / "sae-attn2l-browser.png"));
  EXPECT_TRUE(fs::exists(shots / "fig-sae-density-attn2l.png"));
  std::printf("[browser] feature browser: searched \"%s\" (%d matches), opened feature %d: %s\n",
              sae["query"].get<std::string>().c_str(), sae["matches"].get<int>(), sae["opened"].get<int>(),
              sae["title"].get<std::string>().c_str());
}

TEST_F(ReportsE2E, ChangedAnalysisValueChangesExactlyTheMatchingFigureAndClaim) {
  fs::path a_out = artifacts() / "report-before", b_out = artifacts() / "report-after";
  fs::remove_all(a_out);
  fs::remove_all(b_out);
  ASSERT_EQ(run(report_cmd(a_out)).exit_code, 0);
  std::string path = dirs_[2] + "/analysis.json";
  std::string original = circuitlab::read_file(path);
  json a = json::parse(original);
  // L1H3 of attn2l: a new induction score (drawn as text "0.43" in the head-score heatmap) and
  // ICL score (claims table).
  for (auto& h : a["heads"])
    if (h["layer"] == 1 && h["head"] == 3) h["induction_score"] = 0.4321;
  a["icl"]["icl_score"] = -0.6543;
  circuitlab::write_file_atomic(path, a.dump());
  RunResult p = run(report_cmd(b_out));
  circuitlab::write_file_atomic(path, original);
  ASSERT_EQ(p.exit_code, 0) << p.out;

  auto svg = [](const fs::path& dir, const std::string& id) { return circuitlab::read_file((dir / "svg" / (id + ".svg")).string()); };
  std::string before = svg(a_out, "head-scores-attn2l"), after = svg(b_out, "head-scores-attn2l");
  EXPECT_NE(before, after);
  EXPECT_NE(after.find(">0.43<"), std::string::npos);
  // Figures that do not draw that head's induction score or the ICL score stay byte-identical.
  for (const char* same : {"composition-attn2l", "head-scores-gpt2", "loss-curves", "term-importance-attn2l", "attention-text-attn2l"})
    EXPECT_TRUE(svg(a_out, same) == svg(b_out, same)) << same << " changed though its inputs did not";
  std::string html = circuitlab::read_file((b_out / "index.html").string());
  EXPECT_NE(html.find("-0.654 nats"), std::string::npos);
  EXPECT_EQ(circuitlab::read_file((a_out / "index.html").string()).find("-0.654 nats"), std::string::npos);
}

TEST_F(ReportsE2E, BadInputIsOneLineAndExitOne) {
  RunResult p = run(q(bin()) + " report --runs " + q((root_ / "missing").string()) + " --out " + q((artifacts() / "bad").string()));
  EXPECT_EQ(p.exit_code, 1) << p.out;
  EXPECT_NE(p.out.find("missing"), std::string::npos) << p.out;
  EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 1) << p.out;
  // A parent directory of analysed runs stands for the runs inside it, in name order.
  fs::path all = artifacts() / "report-from-parent";
  RunResult d = run(q(bin()) + " report --runs " + q(root_.string()) + " --out " + q(all.string()) + " --no-svg");
  EXPECT_EQ(d.exit_code, 0) << d.out;
  std::string html = circuitlab::read_file((all / "index.html").string());
  size_t p0 = html.find("<th>attn0l</th>"), p1 = html.find("<th>attn1l</th>"), p2 = html.find("<th>attn2l</th>");
  EXPECT_TRUE(p0 != std::string::npos && p0 < p1 && p1 < p2);
  EXPECT_NE(html.find("<th>gpt2</th>"), std::string::npos);  // the fixture's gpt2 dir is a run dir too
  // A bad features.json: one line naming the file and the field, exit 1, nothing written.
  fs::path bad_root = artifacts() / ("bad-sae-" + std::to_string(::getpid()));
  fs::remove_all(bad_root);
  fx::FixtureShape small;
  std::string bad_run = fx::write_run(bad_root.string(), small);
  json f = fx::small_features();
  f["latents"][0]["top"][0]["acts"] = "hot";
  fx::write_sae_dir(bad_run, fx::sae_cfg(32, 4, "blocks.1.hook_resid_mid"), fx::sae_eval("blocks.1.hook_resid_mid"), f);
  fs::path bad_out = artifacts() / "report-bad-sae";
  fs::remove_all(bad_out);
  RunResult bs = run(q(bin()) + " report --runs " + q(bad_run) + " --out " + q(bad_out.string()) + " --no-svg");
  EXPECT_EQ(bs.exit_code, 1) << bs.out;
  EXPECT_NE(bs.out.find(bad_run + "/sae/features.json: field 'latents[0].top[0].acts'"), std::string::npos) << bs.out;
  EXPECT_EQ(std::count(bs.out.begin(), bs.out.end(), '\n'), 1) << bs.out;
  EXPECT_FALSE(fs::exists(bad_out / "index.html"));
  fs::remove_all(bad_root);
  RunResult h = run(q(bin()) + " report --help");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("--gpt2"), std::string::npos);
  EXPECT_NE(h.out.find("--threads"), std::string::npos);
}

// The real pipeline on a real (random-weight) two-layer model: `circuitlab analyze` writes
// analysis.json (no --data: no ICL / term importance / corpus bigrams), the report draws it.
TEST(ReportsRealAnalysis, ReportDrawsWhatCircuitlabAnalyzeWrote) {
  fs::path run_dir = artifacts() / "real-runs" / "tiny2l";
  fs::remove_all(run_dir.parent_path());
  fx::FixtureShape s;
  s.n_layers = 2, s.n_heads = 4, s.d_model = 32, s.d_head = 8, s.n_ctx = 128, s.d_vocab = 512, s.seed = 5;
  fx::write_random_model((run_dir / "model").string(), s);
  RunResult a = run("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 300 " + q(bin()) + " analyze --model " +
               q((run_dir / "model").string()) + " --out " + q((run_dir / "analysis.json").string()) + " --threads 1 --quiet");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  fs::path out = artifacts() / "real-report";
  fs::remove_all(out);
  RunResult r = run(q(bin()) + " report --runs " + q(run_dir.string()) + " --out " + q(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::printf("[analyze] %.1f s, [report] %.1f s\n", a.seconds, r.seconds);

  json analysis = json::parse(circuitlab::read_file((run_dir / "analysis.json").string()));
  std::string html = circuitlab::read_file((out / "index.html").string());
  auto s0 = html.find("id=\"circuitlab-specs\">") + 22;
  json specs = json::parse(html.substr(s0, html.find("</script>", s0) - s0));
  for (const char* id : {"head-scores-tiny2l", "composition-tiny2l", "kcomp-scatter-tiny2l", "positivity-tiny2l",
                         "attention-repeated-random-tiny2l"})
    EXPECT_TRUE(specs.contains(id)) << id;
  // The heatmap's previous-token value of every head is analysis.json's, rounded to 4 decimals.
  int checked = 0;
  for (auto& v : specs["head-scores-tiny2l"]["data"]["values"]) {
    if (v["score"] != "previous token") continue;
    for (auto& h : analysis["heads"])
      if (h["layer"] == v["layer"] && h["head"] == v["head"]) {
        EXPECT_NEAR(v["value"].get<double>(), h["prev_token_score"].get<double>(), 5e-5);
        ++checked;
      }
  }
  EXPECT_EQ(checked, 8);
  for (auto& [id, _] : specs.items()) EXPECT_TRUE(fs::exists(out / "svg" / (id + ".svg"))) << id;
}
