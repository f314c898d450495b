// In-context learning score (Olsson et al. 2022): mean loss at token 500 minus mean loss at
// token 50 over validation windows, plus the loss-by-position curve. When n_ctx < 501 the
// largest positions the context allows are used (late = T−1, early = late/10) and said so.
// Not a trainer metric: it runs the model forward only.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

struct IclPositions {
  int early = 50, late = 500;
  bool adjusted = false;
  std::string note;
};
IclPositions icl_positions(int window_len);

struct IclResult {
  IclPositions pos;
  double loss_early = 0, loss_late = 0, icl_score = 0;
  int n_windows = 0, window_len = 0;
  std::vector<double> loss_by_position;  // [T]
};

// Per-position mean cross-entropy [T] of logits [B, T, V] against y [B, T] (nats).
torch::Tensor loss_by_position(const torch::Tensor& logits, const torch::Tensor& y);
IclResult icl_from_curve(const std::vector<double>& curve, int n_windows);

// xs/ys: eval windows (each [b, T], model ids). opts: forwarded (frozen patterns etc.).
IclResult icl_score(models::HookedTransformer& model, const std::vector<torch::Tensor>& xs,
                    const std::vector<torch::Tensor>& ys);

}  // namespace circuitlab::analysis
