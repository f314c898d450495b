// Helpers shared by the tests of models/: two-sided allclose with the worst mismatch in the
// failure message, temp dirs, fixture generation via make_fixtures.py. Test-only.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

namespace circuitlab::testing {

// Golden tolerance: float32 forward vs a float64 reference (issue 3 acceptance).
constexpr double kGoldenRtol = 1e-4;
constexpr double kGoldenAtol = 1e-5;

// |a-b| <= atol + rtol*|b| AND |a-b| <= atol + rtol*|a| (two-sided); equal infinities pass.
inline ::testing::AssertionResult all_close(const torch::Tensor& actual_in, const torch::Tensor& expected_in, double rtol,
                                            double atol, const std::string& what) {
  if (actual_in.sizes() != expected_in.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << actual_in.sizes() << " vs expected " << expected_in.sizes();
  torch::Tensor a = actual_in.detach().to(torch::kCPU, torch::kDouble);
  torch::Tensor e = expected_in.detach().to(torch::kCPU, torch::kDouble);
  torch::Tensor same_inf = torch::isinf(a).logical_and(a == e);
  torch::Tensor diff = (a - e).abs().masked_fill(same_inf, 0.0);
  torch::Tensor tol = torch::minimum(a.abs(), e.abs()) * rtol + atol;
  torch::Tensor bad = (diff > tol).logical_or(torch::isnan(diff));
  if (!bad.any().item<bool>()) return ::testing::AssertionSuccess();
  torch::Tensor excess = (diff - tol).masked_fill(torch::isnan(diff), 1e300).flatten();
  int64_t i = excess.argmax().item<int64_t>();
  return ::testing::AssertionFailure() << what << ": " << bad.sum().item<int64_t>() << " of " << a.numel()
                                       << " elements differ (rtol " << rtol << ", atol " << atol << "); worst at flat index "
                                       << i << ": actual " << a.flatten()[i].item<double>() << " expected "
                                       << e.flatten()[i].item<double>();
}

inline std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/circuitlab-" + tag + "-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  return p;
}

inline std::string source_dir() {
  const char* s = std::getenv("CIRCUITLAB_SOURCE_DIR");
  return s ? s : ".";
}

inline std::string python() {
  const char* s = std::getenv("CIRCUITLAB_PYTHON");
  return s ? s : "/usr/bin/python3";
}

// Generates the golden fixtures (make_fixtures.py, numpy only) into a fresh temp dir.
inline std::string generate_fixtures() {
  std::string dir = make_temp_dir("models-fixtures");
  std::string cmd = python() + " " + source_dir() + "/tests/models/make_fixtures.py " + dir;
  int rc = std::system(cmd.c_str());
  if (rc != 0) throw std::runtime_error("fixture generation failed: " + cmd);
  return dir;
}

inline int run_shell(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::string out;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace circuitlab::testing
