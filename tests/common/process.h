// The one way tests run another program: argv (no shell) or a shell command line, stdin from a
// file, stdout and stderr captured apart, the exit code (128 + signal when killed).
// Test-only; apps/ and the libraries never spawn through this.
#pragma once
#include <string>
#include <vector>

namespace circuitlab::testing {

struct RunResult {
  int exit_code = -1;  // 128 + signal when the program was killed; 127 when it could not start
  std::string out, err;
  double seconds = 0;  // wall time
  std::string output() const { return out + err; }  // both streams, stdout first
};

struct RunOptions {
  std::string stdin_file;  // empty: /dev/null
  std::string cwd;         // empty: the test's working directory
  bool merge_stderr = false;  // stderr into `out` as well, interleaved as written (2>&1)
};

// Runs `argv` (argv[0] looked up on PATH).
RunResult run_program(const std::vector<std::string>& argv, const RunOptions& opts = {});
// Runs `cmd` through /bin/sh -c (for pipes and redirections the test needs).
RunResult run_shell(const std::string& cmd, const RunOptions& opts = {});
// run_shell with stderr merged into stdout: the exit code, and both streams in `*output`.
int run_shell(const std::string& cmd, std::string* output);
// `s` quoted for /bin/sh as one word.
std::string shell_quote(const std::string& s);

}  // namespace circuitlab::testing
