// Where the tests find the project: the `circuitlab` binary under test and the source tree.
// ctest sets both variables (tests/CMakeLists.txt); run by hand, the fallbacks below apply.
// Test-only; not linked into circuitlab.
#pragma once
#include <string>

namespace circuitlab::testing {

// $CIRCUITLAB_BIN (set by ctest), else <source_dir()>/build/apps/circuitlab; absolute.
std::string circuitlab_bin();
// $CIRCUITLAB_SOURCE_DIR (set by ctest), else the current directory; absolute.
std::string source_dir();
// The value of the environment variable `name`, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

}  // namespace circuitlab::testing
