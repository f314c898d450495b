// Benchmark of `circuitlab report` on demo-sized generated runs (three toys with 12 heads a
// layer, 3000 logged steps, and a GPT-2-small-shaped analysis): loading the run dirs, building
// the specs/tables/claims and the page, and the whole write including the Node SVG export.
// BM_ReportBinary times the real `circuitlab report` as a user runs it ($CIRCUITLAB_BIN, else
// build/apps/circuitlab) against the README's budget of 30 s for demo-sized runs.
// Run: build/bench/bench_report --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>

#include "reports/report.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"
#include "tests/reports/fixture.h"

using namespace circuitlab::reports;

namespace {

struct Inputs {
  circuitlab::testing::TempDir tmp{"bench-report"};
  std::string root = tmp.path(), gpt2;
  std::vector<std::string> dirs;
  Inputs() {
    dirs = testing::write_toy_runs(root, /*demo=*/true);
    gpt2 = testing::write_gpt2(root);
  }
};

Inputs& inputs() {
  static Inputs in;
  return in;
}

void BM_LoadRuns(benchmark::State& state) {
  auto& in = inputs();
  for (auto _ : state) {
    std::vector<RunInputs> runs;
    for (auto& d : in.dirs) runs.push_back(load_run(d));
    RunInputs g = load_run(in.gpt2, true);
    benchmark::DoNotOptimize(g.analysis.size());
  }
}
BENCHMARK(BM_LoadRuns)->Unit(benchmark::kMillisecond);

void BM_BuildAndRenderHtml(benchmark::State& state) {
  auto& in = inputs();
  std::vector<RunInputs> runs;
  for (auto& d : in.dirs) runs.push_back(load_run(d));
  RunInputs g = load_run(in.gpt2, true);
  size_t bytes = 0;
  for (auto _ : state) {
    Report rep = build_report(runs, &g);
    std::string html = render_html(rep, "", "bench");
    bytes = html.size();
    benchmark::DoNotOptimize(html.data());
  }
  state.counters["html_MB_without_runtime"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_BuildAndRenderHtml)->Unit(benchmark::kMillisecond);

void BM_WriteReportWithSvg(benchmark::State& state) {
  auto& in = inputs();
  ReportOptions opts;
  opts.runs = in.dirs;
  opts.gpt2 = in.gpt2;
  opts.out = in.root + "/report";
  opts.svg = state.range(0) != 0;
  ReportResult r;
  for (auto _ : state) r = write_report(opts);
  state.counters["html_MB"] = static_cast<double>(r.html_bytes) / (1 << 20);
  state.counters["figures"] = r.n_figures;
}
BENCHMARK(BM_WriteReportWithSvg)->Arg(0)->Arg(1)->ArgName("svg")->Unit(benchmark::kMillisecond)->Iterations(2);

// The whole `circuitlab report` process on the demo-sized runs, SVG export included (budget 30 s).
void BM_ReportBinary(benchmark::State& state) {
  auto& in = inputs();
  namespace t = circuitlab::testing;
  std::vector<std::string> argv{t::circuitlab_bin(), "report", "--runs"};
  argv.insert(argv.end(), in.dirs.begin(), in.dirs.end());
  argv.insert(argv.end(), {"--gpt2", in.gpt2, "--out", in.root + "/report-binary", "--threads", "1"});
  double worst = 0;
  for (auto _ : state) {
    const t::RunResult r = t::run_program(argv);
    if (r.exit_code != 0) {
      state.SkipWithError(("circuitlab report failed: " + r.err).c_str());
      break;
    }
    state.SetIterationTime(r.seconds);
    worst = std::max(worst, r.seconds);
  }
  state.counters["budget_s"] = 30;
  state.counters["worst_s"] = worst;
}
BENCHMARK(BM_ReportBinary)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
