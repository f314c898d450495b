// Helpers shared by the libFuzzer targets: a per-process scratch directory and writing the
// fuzzer's bytes to a file there, since every reader under test takes a path.
// Not a test framework: targets abort (crash) only on a real defect, never on an Error.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace circuitlab::fuzz {

// $TMPDIR/circuitlab-fuzz-<pid>/, created once, removed at exit (files inside are overwritten
// on every input, so the directory never grows).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    std::string d = std::string(t && *t ? t : "/tmp") + "/circuitlab-fuzz-" + std::to_string(getpid());
    std::string cmd = "mkdir -p '" + d + "'";
    if (std::system(cmd.c_str()) != 0) std::abort();
    static std::string keep = d;
    std::atexit([] { std::system(("rm -rf '" + keep + "'").c_str()); });
    return d;
  }();
  return dir;
}

// Writes bytes to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Loud failure of an invariant the fuzzer found broken (libFuzzer saves the input).
#define FUZZ_CHECK(cond, ...)                                          \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s: ", #cond);          \
      std::fprintf(stderr, __VA_ARGS__);                               \
      std::fprintf(stderr, "\n");                                      \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

}  // namespace circuitlab::fuzz
