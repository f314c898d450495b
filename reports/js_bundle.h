// The report's JavaScript: the esbuild bundles of reports/js/ (vega + vega-lite + vega-embed
// for the page, vega's headless View for SVG export), found where the CMake build put them or
// bundled on the spot from node_modules. Also runs the Node SVG exporter.
// Not a JavaScript engine: Node.js does the SVG rendering, in a child process.
#pragma once
#include <string>
#include <vector>

namespace circuitlab::reports {

struct JsBundle {
  std::string runtime_js;  // browser IIFE, inlined into index.html
  std::string export_svg;  // Node ESM script: export_svg SPECS.json OUT_DIR
};

// Looks in $CIRCUITLAB_REPORT_JS_DIR, then the build tree compiled into the binary; when the
// bundles are missing there, runs esbuild from <source>/node_modules into `scratch_dir`.
// Error naming what is missing (and `./run setup`) when neither works.
JsBundle find_or_build_bundle(const std::string& scratch_dir);

// `node EXPORT SPECS OUT_DIR`; Error with the exit status when it fails.
void run_svg_export(const JsBundle& bundle, const std::string& specs_json, const std::string& out_dir);

// Runs argv[0] (searched on PATH) with the given arguments; returns its exit status (or -1).
int run_process(const std::vector<std::string>& argv);

}  // namespace circuitlab::reports
