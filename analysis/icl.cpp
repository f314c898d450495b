// ICL score and loss-by-position (see icl.h).
#include "analysis/icl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace circuitlab::analysis {

IclPositions icl_positions(int T) {
  IclPositions p;
  if (T > 500) return p;
  p.adjusted = true;
  p.late = T - 1;
  p.early = std::max(1, static_cast<int>(std::lround(p.late / 10.0)));
  p.note = "window of " + std::to_string(T) + " tokens: positions " + std::to_string(p.late) + " and " +
           std::to_string(p.early) + " used instead of 500 and 50 (ratio 10 kept)";
  return p;
}

torch::Tensor loss_by_position(const torch::Tensor& logits, const torch::Tensor& y) {
  torch::Tensor lp = torch::log_softmax(logits.to(torch::kFloat32), -1);                 // [B, T, V]
  torch::Tensor nll = -lp.gather(-1, y.unsqueeze(-1).to(torch::kInt64)).squeeze(-1);     // [B, T]
  return nll.to(torch::kFloat64).sum(0);  // summed over the batch; caller divides
}

IclResult icl_from_curve(const std::vector<double>& curve, int n_windows) {
  IclResult r;
  r.window_len = static_cast<int>(curve.size());
  r.n_windows = n_windows;
  r.loss_by_position = curve;
  r.pos = icl_positions(r.window_len);
  if (r.window_len < 3) fail("ICL score: windows of at least 3 tokens are needed");
  r.loss_early = curve[r.pos.early];
  r.loss_late = curve[r.pos.late];
  r.icl_score = r.loss_late - r.loss_early;
  return r;
}

IclResult icl_score(models::HookedTransformer& model, const std::vector<torch::Tensor>& xs,
                    const std::vector<torch::Tensor>& ys) {
  torch::NoGradGuard ng;
  if (xs.empty()) fail("ICL score: no evaluation windows");
  torch::Tensor sum;
  int64_t n = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    torch::Tensor s = loss_by_position(model->forward(xs[i]), ys[i]);
    sum = sum.defined() ? sum + s : s;
    n += xs[i].size(0);
  }
  sum = (sum / static_cast<double>(n)).contiguous();
  std::vector<double> curve(sum.data_ptr<double>(), sum.data_ptr<double>() + sum.numel());
  return icl_from_curve(curve, static_cast<int>(n));
}

}  // namespace circuitlab::analysis
