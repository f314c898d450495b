// Activation patching (Meng et al. 2022; Wang et al. 2022, IOI): run the corrupted prompt,
// copy one activation from the clean run, and measure how much of the clean logit difference
// comes back. Not path patching: one activation at a time, every downstream path included.
#pragma once
#include <string>

#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

enum class PatchTarget {
  ResidPre,    // blocks.{l}.hook_resid_pre at one position          -> [L, T]
  AttnOut,     // blocks.{l}.hook_attn_out at one position           -> [L, T]
  Head,        // blocks.{l}.attn.hook_z of one head, all positions  -> [L, H]
  HeadPos,     // blocks.{l}.attn.hook_z of one head at one position -> [L*H, T] (row l*H + h)
};
PatchTarget patch_target_from_string(const std::string& s);  // "resid_pre" | "attn_out" | "head" | "head_pos"
std::string to_string(PatchTarget t);

struct PatchResult {
  double clean_logit_diff = 0;    // logit[correct] - logit[incorrect] at the last position
  double corrupt_logit_diff = 0;
  torch::Tensor patched_logit_diff;  // [rows, cols] (see PatchTarget), float
  // (patched - corrupt) / (clean - corrupt): 1 = fully restored, 0 = no effect.
  // NaN everywhere when clean and corrupt differ by less than 1e-6 (no signal to recover).
  torch::Tensor recovery;            // [rows, cols], float
};

// clean, corrupt: [1,T] int64 of equal T; correct/incorrect: output-vocab ids. Runs are batched
// (`batch` patched sequences per forward pass). Error on unequal lengths or ids out of range.
PatchResult activation_patching(models::HookedTransformer& model, const torch::Tensor& clean,
                                const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                                PatchTarget target, int batch = 32);

// Plain reference: one forward pass per patched cell, no batching (tests hold the two together).
PatchResult activation_patching_reference(models::HookedTransformer& model, const torch::Tensor& clean,
                                          const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                                          PatchTarget target);

}  // namespace circuitlab::analysis
