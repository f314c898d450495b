// Activations at named hook points without computing what comes after the last of them:
// TransformerLens's stop_at_layer, at the granularity of a hook point. For readers of a few
// points (SAE training, features and encoding) the unembedding — [B·T, V] logits, the largest
// product of a small model — and every later block are skipped. Not a full cache: no logits.
#pragma once
#include <string>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::models {

// tokens [B, T] -> the activations at `hook_names` (as run_with_cache would cache them,
// detached); the forward ends at the one latest in forward order. Error naming a hook the model
// lacks.
ActivationCache run_to_hooks(HookedTransformer& model, const torch::Tensor& tokens,
                             const std::vector<std::string>& hook_names, const ForwardOptions& opts = {});
// The same for one point: its activation.
torch::Tensor run_to_hook(HookedTransformer& model, const torch::Tensor& tokens, const std::string& hook_name,
                          const ForwardOptions& opts = {});

}  // namespace circuitlab::models
