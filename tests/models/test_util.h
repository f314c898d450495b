// Helpers of the tests of models/ beyond tests/common/ (all_close, temp dirs, paths, the process
// runner, re-exported here): golden tolerances and fixture generation via make_fixtures.py.
// Test-only.
#pragma once
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "tests/common/all_close.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::testing {

// Golden tolerance: float32 forward vs a float64 reference (issue 3 acceptance).
constexpr double kGoldenRtol = 1e-4;
constexpr double kGoldenAtol = 1e-5;

inline std::string python() {
  return env_or("CIRCUITLAB_PYTHON", "/usr/bin/python3");
}

// Generates the golden fixtures (make_fixtures.py, numpy only) into a temp dir that lives
// until the test program exits.
inline std::string generate_fixtures() {
  static const TempDir dir("models-fixtures");
  const RunResult r = run_program({python(), source_dir() + "/tests/models/make_fixtures.py", dir.path()});
  if (r.exit_code != 0) throw std::runtime_error("fixture generation failed (" + python() + "):\n" + r.output());
  return dir.path();
}

}  // namespace circuitlab::testing
