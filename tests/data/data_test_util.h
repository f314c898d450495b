// Helpers shared by the data-layer tests: temp dirs, running the circuitlab binary and other
// programs, reading files. Test-only; not linked into circuitlab.
#pragma once
#include <string>
#include <vector>

namespace circuitlab::testing {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs `argv` (argv[0] looked up on PATH) with stdin from `stdin_file` (empty: /dev/null).
RunResult run_program(const std::vector<std::string>& argv, const std::string& stdin_file = "");
// $CIRCUITLAB_BIN (set by ctest), else build/apps/circuitlab.
std::string circuitlab_bin();
// $CIRCUITLAB_SOURCE_DIR, else the current directory.
std::string source_dir();
std::string slurp(const std::string& path);
void spit(const std::string& path, const std::string& contents);
std::vector<std::string> list_dir(const std::string& dir);  // names, sorted
int count_lines(const std::string& s);

}  // namespace circuitlab::testing
