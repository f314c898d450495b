// `circuitlab report`: the self-contained HTML figure report (+ one SVG per figure) from run
// directories (analysis.json, metrics.jsonl, configs) and an optional analysed GPT-2 dir.
// Not an analysis: run `circuitlab analyze` first; the report never recomputes a score.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "reports/report.h"

namespace circuitlab::apps {

void register_report_commands(CLI::App& app) {
  struct Args {
    std::vector<std::string> runs;
    std::string gpt2, out = "runs/report";
    bool no_svg = false;
    int threads = 1;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Write a self-contained HTML figure report (index.html, scripts and data inline, no network) and svg/ "
      "with one SVG per figure, from analysed run directories");
  cmd->add_option("--runs", args->runs,
                  "Run directories (runs/<name>/ with analysis.json; metrics.jsonl, train_config.json, model/ and "
                  "phase_change.json are used when present)")
      ->expected(1, -1);
  cmd->add_option("--gpt2", args->gpt2,
                  "An analysed GPT-2 directory (analysis.json beside config.json, or in a run-style dir): adds the GPT-2 section");
  cmd->add_option("--out", args->out, "Output directory for index.html and svg/")->capture_default_str();
  cmd->add_flag("--no-svg", args->no_svg, "Skip the SVG export (which needs Node.js)");
  cmd->add_option("--threads", args->threads, "Threads (the report is single-threaded; accepted for uniformity)")
      ->capture_default_str();
  cmd->callback([args]() {
    set_threads(args->threads);
    reports::ReportOptions opts;
    opts.runs = args->runs;
    opts.gpt2 = args->gpt2;
    opts.out = args->out;
    opts.svg = !args->no_svg;
    reports::ReportResult r = reports::write_report(opts);
    std::printf("report: %s (%.2f MB, %d figures, %d SVGs in %s/svg, %d claims) in %.1f s\n", r.html_path.c_str(),
                static_cast<double>(r.html_bytes) / (1024.0 * 1024.0), r.n_figures, r.n_svgs, opts.out.c_str(), r.n_claims,
                r.seconds);
  });
}

}  // namespace circuitlab::apps
