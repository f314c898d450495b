// Term importance (paper §"Term Importance Analysis"): with every attention pattern frozen to
// the clean run's, run k lets each head add the output it produced in run k−1 (zero in run 0),
// so run k's loss L_k contains exactly the path terms of order ≤ k (direct path, + individual
// heads, + virtual heads …); marginal nats per order = L_{k−1} − L_k. Also the ICL paper's
// per-head pattern-preserving ablation (one head's output zeroed, patterns frozen).
// Not a general ablation API (the lab's analysis/ablation.* is).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "analysis/icl.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

struct TermOrder {
  int order = 0;
  std::string label;
  double loss = 0, marginal_nats = 0;
};
struct HeadAblation {
  int layer = 0, head = 0;
  double loss_delta = 0;
  std::optional<double> icl_delta;
};
struct TermImportance {
  int64_t n_tokens = 0;
  int window_len = 0;
  double uniform_loss = 0, full_loss = 0;
  std::vector<TermOrder> orders;      // n_layers + 1
  std::vector<HeadAblation> per_head;
};

// Mean loss of the model on the windows with all patterns frozen to the clean run's, where
// `z_override(layer, clean_run_z)` may replace each layer's hook_z [B, T, H, Dh].
// Callers: the term-order runs and per-head ablations; exposed for tests.
struct FrozenRun {
  double loss = 0;                     // mean nats over all B·T tokens
  std::vector<double> curve;           // summed loss per position (for ICL), [T]
  std::vector<torch::Tensor> z;        // per layer hook_z as computed in this run
};
FrozenRun frozen_run(models::HookedTransformer& model, const torch::Tensor& x, const torch::Tensor& y,
                     const std::vector<torch::Tensor>& patterns,
                     const std::vector<torch::Tensor>* replace_z,  // per layer z to add instead (run k), or null
                     int ablate_layer = -1, int ablate_head = -1);

// per_head_icl: also the ICL delta per head (costs one more pass per head on the windows).
TermImportance term_importance(models::HookedTransformer& model, const std::vector<torch::Tensor>& xs,
                               const std::vector<torch::Tensor>& ys, bool per_head_icl);

}  // namespace circuitlab::analysis
