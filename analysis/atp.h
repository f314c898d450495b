// Attribution patching (AtP; Nanda, "Attribution patching", 2023): every cell of an
// activation-patching heatmap estimated at once to first order, (a_clean − a_corrupt)·∂m/∂a
// with the gradient taken at the corrupted run — one clean forward, one corrupted forward and
// one backward. Exact where the metric is linear in a; not real patching (analysis/patching.h).
#pragma once
#include <cstdint>
#include <vector>

#include "analysis/patching.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

// One AtP heatmap in patching's units, shaped like PatchResult's tensors (float).
struct AtpMap {
  torch::Tensor attribution;         // [rows, cols] (a_clean − a_corrupt)·∂m/∂a, summed over the cell
  torch::Tensor patched_logit_diff;  // [rows, cols] corrupt metric + attribution (estimated patched metric)
  // attribution / (clean − corrupt), as PatchResult::recovery; NaN everywhere when
  // |clean − corrupt| < 1e-6.
  torch::Tensor recovery;            // [rows, cols]
};

struct AtpResult {
  double clean_logit_diff = 0;    // m(clean) = logit[correct] − logit[incorrect] at the last position
  double corrupt_logit_diff = 0;  // m(corrupt), the point the gradient is taken at
  AtpMap resid_pre;  // blocks.{l}.hook_resid_pre at one position            [L, T]
  AtpMap attn_out;   // blocks.{l}.hook_attn_out at one position             [L, T]
  AtpMap mlp_out;    // blocks.{l}.hook_mlp_out at one position              [L, T]; undefined tensors when attn_only
  AtpMap head_pos;   // blocks.{l}.attn.hook_z of head h at one position     [L*H, T] (row l*H + h), summed over d_head
  AtpMap head;       // hook_z of head h at every position (Σ over T of head_pos) [L, H]
  // The map laid out as activation_patching(target) lays out its result.
  const AtpMap& at(PatchTarget t) const;
};

struct AtpOptions {
  // Forward options of the clean and the corrupted run (e.g. frozen_patterns [1,H,T,T] per
  // layer, which make an attention-only model without LayerNorm linear in every target).
  models::ForwardOptions clean_forward;
  models::ForwardOptions corrupt_forward;
};

// clean, corrupt: [1,T] int64 of equal T, ids in [0, d_vocab); correct/incorrect: output-vocab
// ids. metric m = logit[T−1, correct] − logit[T−1, incorrect] (patching.h's). For a target
// activation a (shape of its hook) and a cell c (a position, a head at a position, ...):
//   AtP(c) = Σ_{i∈c} (a_clean − a_corrupt)_i · ∂m/∂a_i |_{corrupt}
// The gradient comes from zero-valued leaves added at each target hook of the corrupted run
// (the model's parameters and cache settings are untouched). Error (circuitlab::Error) naming
// the field: "clean"/"corrupt" of the wrong shape, unequal lengths or ids out of range,
// "correct"/"incorrect" outside the output vocabulary.
AtpResult attribution_patching(models::HookedTransformer& model, const torch::Tensor& clean,
                               const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                               const AtpOptions& opts = {});

// AtP against real activation patching of the same target, in patched-metric units.
struct AtpDisagreement {
  int64_t row = 0, col = 0;   // cell of the [rows, cols] map
  double atp = 0, real = 0;   // estimated and real patched metric
};
struct AtpComparison {
  double pearson = 0;   // over the cells where both are finite; NaN with < 2 cells or no variance
  int64_t cells = 0;    // cells counted
  std::vector<AtpDisagreement> worst;  // the k cells with the largest |atp − real|, largest first
};
// Error when the two maps' shapes differ.
AtpComparison compare_atp_with_patching(const AtpMap& atp, const PatchResult& real, int k = 5);

}  // namespace circuitlab::analysis
