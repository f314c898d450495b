// libFuzzer target: the report's reading of analysis.json (schema check, then every section,
// figure and claim built from it, and the page rendered). Whatever the bytes, the outcome is
// a report or an Error naming the file and field; a raw nlohmann exception is a crash.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "reports/report.h"
#include "reports/run_inputs.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string dir = fuzz::scratch_dir() + "/run";
  static const bool made = std::system(("mkdir -p '" + dir + "'").c_str()) == 0;
  if (!made) std::abort();
  fuzz::write_scratch("run/analysis.json", bytes, size);
  try {
    std::vector<reports::RunInputs> runs{reports::load_run(dir)};
    reports::Report rep = reports::build_report(runs, nullptr);
    const std::string html = reports::render_html(rep, "", "fuzz");
    FUZZ_CHECK(!html.empty(), "empty page for an accepted analysis.json");
  } catch (const Error&) {
  }
  return 0;
}
