// Span repetition, a documented training-data option for the demo presets: with probability
// p a window [T+1 tokens] gets one of its own spans copied to a later, non-overlapping place
// in the same window, so the model sees in-context repeats (the signal induction heads learn
// from) far more often than in 3 M tokens of natural text. The rest of the window stays
// natural text. Not a sampler: it edits windows the BatchSampler drew.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace circuitlab::train {

struct SpanRepeat {
  double prob = 0.0;
  int min_len = 8;  // span length uniform in [min_len, (T+1)/2]
  bool adjacent = false;  // copy directly after its source ([.., S, S, ..]) or anywhere later
  uint64_t seed = 0;

  // windows: int64 [B, T+1] (x = [:, :T], y = [:, 1:]), edited in place. Window b's choice is a
  // pure function of (seed, first_index + b), so data-parallel ranks that share a global window
  // numbering make the same choices as one process. Returns how many windows were edited.
  int64_t apply(torch::Tensor& windows, uint64_t first_index) const;
};

}  // namespace circuitlab::train
