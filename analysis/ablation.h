// Head ablation for the lab and tests: zero- or mean-ablate attention heads by replacing
// their slice of blocks.{l}.attn.hook_z [B,T,H,Dh] through a hook, plus the next-token loss.
// Not a circuit analysis itself: composition/term-importance code lives elsewhere in analysis/.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

struct HeadRef {
  int layer = 0;
  int head = 0;
  bool operator==(const HeadRef& o) const { return layer == o.layer && head == o.head; }
};

enum class AblationKind { Zero, Mean };
AblationKind ablation_kind_from_string(const std::string& s);  // "zero" | "mean", else Error

// Hooks that ablate `heads` in a run on `tokens` [B,T]. Mean ablation replaces a head's z by
// its mean over the batch and positions of the same tokens (computed here with one cached
// pass), as TransformerLens mean-ablation over the prompt. Error on a head out of range.
std::vector<std::pair<std::string, models::HookFn>> head_ablation_hooks(models::HookedTransformer& model,
                                                                        const torch::Tensor& tokens,
                                                                        const std::vector<HeadRef>& heads,
                                                                        AblationKind kind);

// Logits [B,T,V_out] with `heads` ablated.
torch::Tensor run_with_ablated_heads(models::HookedTransformer& model, const torch::Tensor& tokens,
                                     const std::vector<HeadRef>& heads, AblationKind kind);

// Mean next-token cross entropy: logits [B,T,V] predicting tokens [B,T] shifted by one
// (positions 0..T-2 predict 1..T-1). Needs T >= 2.
double next_token_loss(const torch::Tensor& logits, const torch::Tensor& tokens);
// Per-position losses [B,T-1] (same definition, not averaged).
torch::Tensor next_token_losses(const torch::Tensor& logits, const torch::Tensor& tokens);

}  // namespace circuitlab::analysis
