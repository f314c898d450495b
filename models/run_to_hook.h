// The activation at one hook point without computing what comes after it: TransformerLens's
// stop_at_layer, at the granularity of a hook point. For readers of one point (SAE features and
// encoding, probes) the unembedding — [B·T, V] logits, the largest product of a small model —
// and every later block are skipped. Not a cache: one point, no logits.
#pragma once
#include <string>

#include "models/hooked_transformer.h"

namespace circuitlab::models {

// tokens [B, T] -> the activation at `hook_name` (as run_with_cache would cache it, detached).
// Error naming the hook when the model has no such point.
torch::Tensor run_to_hook(HookedTransformer& model, const torch::Tensor& tokens, const std::string& hook_name,
                          const ForwardOptions& opts = {});

}  // namespace circuitlab::models
