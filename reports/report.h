// The figure report: sections of HTML tables and Vega-Lite figures built from run directories
// (analysis.json, metrics.jsonl, configs), the claims table, and the writer of the
// self-contained index.html + svg/. Every number shown comes from those files.
// Not a renderer: vega/vega-lite draw the figures (in the page, and in Node for svg/).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/run_inputs.h"

namespace circuitlab::reports {

struct Figure {
  std::string id;       // file-name safe: svg/<id>.svg, data-spec="<id>"
  std::string title;
  std::string caption;  // HTML
  nlohmann::json spec;  // Vega-Lite
};

struct Block {
  std::string html;     // a table, a note, a heading (already escaped)
  bool has_figure = false;
  Figure figure;
};

struct Section {
  std::string id, title;
  std::vector<Block> blocks;
  void add_html(std::string h) { blocks.push_back(Block{std::move(h), false, {}}); }
  void add_figure(Figure f) { blocks.push_back(Block{"", true, std::move(f)}); }
};

// One quantitative claim of the paper beside this run's measurement.
struct Claim {
  std::string run;       // run name the measurement comes from
  std::string topic;     // paper section
  std::string claim;     // the paper's statement
  std::string paper;     // the paper's value
  std::string measured;  // ours, computed from analysis.json
  std::string rule;      // how the verdict is decided
  std::string verdict;   // "reproduced" | "partly" | "not reproduced" | "not measured"
};

struct Report {
  std::vector<Section> sections;
  std::vector<Claim> claims;
  std::vector<std::string> notes;  // limits applied (downsampling, missing inputs)
  std::vector<std::string> styles; // CSS of optional sections (the SAE browser), appended to the page style
};

// Builds every section from the loaded runs (toys in command-line order) and an optional GPT-2.
Report build_report(const std::vector<RunInputs>& runs, const RunInputs* gpt2);

// The claims of the paper measured on these runs (also part of build_report's result).
std::vector<Claim> evaluate_claims(const std::vector<RunInputs>& runs, const RunInputs* gpt2);

// index.html: styles, the figure runtime, the specs and the tables, all inline.
std::string render_html(const Report& report, const std::string& runtime_js, const std::string& title);

// All figure specs keyed by id (what svg/ export and the page's runtime consume).
nlohmann::json specs_by_id(const Report& report);

struct ReportOptions {
  std::vector<std::string> runs;
  std::string gpt2;   // empty: no GPT-2 section
  std::string out;
  bool svg = true;
};

struct ReportResult {
  std::string html_path;
  uint64_t html_bytes = 0;
  int n_figures = 0;
  int n_svgs = 0;
  int n_claims = 0;
  double seconds = 0;
};

// Loads the runs, builds the report, writes <out>/index.html (atomically) and <out>/svg/*.svg.
ReportResult write_report(const ReportOptions& opts);

// JSON text that can sit inside <script type="application/json"> ("</" escaped; invalid UTF-8
// replaced).
std::string script_json(const nlohmann::json& j);

// HTML text escaping (&, <, >, ", ').
std::string html_escape(const std::string& s);

}  // namespace circuitlab::reports
