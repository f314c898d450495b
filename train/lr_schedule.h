// Learning-rate schedule: linear warmup from lr/warmup to lr over `warmup` steps, then a
// half-cosine from lr down to min_lr at the last step (as nanoGPT). Pure function of the step;
// not an optimizer (LibTorch 1.13 has no such scheduler, so the trainer sets group lrs).
#pragma once
#include <cstdint>

namespace circuitlab::train {

struct LrSchedule {
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup = 0;
  int64_t total = 1;  // optimizer steps in the run

  // lr for optimizer step `step` in [0, total): warmup gives lr * (step+1) / warmup for
  // step < warmup; then min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * p)), p = (step - warmup)
  // / max(1, total - 1 - warmup) clamped to [0, 1], so the last step runs at exactly min_lr.
  double at(int64_t step) const;
};

}  // namespace circuitlab::train
