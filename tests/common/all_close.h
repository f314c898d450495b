// The one tensor comparison of the tests: two-sided and scale-aware, |a-e| <= atol + rtol*min(|a|,|e|)
// (so neither side's magnitude loosens it), equal infinities pass, NaN fails; on failure the
// message names the count of mismatches and the worst one. Test-only.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace circuitlab::testing {

inline ::testing::AssertionResult all_close(const torch::Tensor& actual_in, const torch::Tensor& expected_in,
                                            double rtol, double atol, const std::string& what = "tensors") {
  if (!actual_in.defined() || !expected_in.defined())
    return ::testing::AssertionFailure() << what << ": undefined tensor";
  if (actual_in.sizes() != expected_in.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << actual_in.sizes() << " vs expected "
                                         << expected_in.sizes();
  torch::Tensor a = actual_in.detach().to(torch::kCPU, torch::kDouble);
  torch::Tensor e = expected_in.detach().to(torch::kCPU, torch::kDouble);
  if (a.numel() == 0) return ::testing::AssertionSuccess();
  torch::Tensor same_inf = torch::isinf(a).logical_and(a == e);
  torch::Tensor diff = (a - e).abs().masked_fill(same_inf, 0.0);
  torch::Tensor tol = torch::minimum(a.abs(), e.abs()) * rtol + atol;
  torch::Tensor bad = (diff > tol).logical_or(torch::isnan(diff));
  if (!bad.any().item<bool>()) return ::testing::AssertionSuccess();
  torch::Tensor excess = (diff - tol).masked_fill(torch::isnan(diff), 1e300).flatten();
  const int64_t i = excess.argmax().item<int64_t>();
  return ::testing::AssertionFailure() << what << ": " << bad.sum().item<int64_t>() << " of " << a.numel()
                                       << " elements differ (rtol " << rtol << ", atol " << atol
                                       << "); worst at flat index " << i << ": actual "
                                       << a.flatten()[i].item<double>() << " expected "
                                       << e.flatten()[i].item<double>();
}

}  // namespace circuitlab::testing
