// Small file helpers of the tests: whole-file reads and writes of fixtures and outputs,
// directory listings, line counts. Test-only; the product's own file layer is core/file_io.h.
#pragma once
#include <string>
#include <vector>

namespace circuitlab::testing {

// The file's bytes; "" when it cannot be read.
std::string slurp(const std::string& path);
// Writes `contents` to `path` (creating its parent directories); throws when it cannot.
void spit(const std::string& path, const std::string& contents);
std::vector<std::string> list_dir(const std::string& dir);  // names, sorted; empty when unreadable
int count_lines(const std::string& s);                      // a last line without '\n' counts

}  // namespace circuitlab::testing
