// See lr_schedule.h.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace circuitlab::train {

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t span = std::max<int64_t>(1, total - 1 - warmup);
  const double p = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
}

}  // namespace circuitlab::train
