// Direct logit attribution (TransformerLens decompose_resid / stack_head_results +
// apply_ln_to_stack): the final residual at one position is a sum of what each component
// wrote; with the final LayerNorm's scale frozen from the run, each component's share of a
// logit (or logit difference) is linear in it, and the shares sum to the logit exactly.
// Not attribution patching (no gradients) and not indirect effects through later layers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace circuitlab::models {
class HookedTransformer;
}

namespace circuitlab::analysis {

enum class DlaKind { Embed, PosEmbed, Head, Mlp, Bias };
const char* to_string(DlaKind k);  // "embed" | "pos_embed" | "head" | "mlp" | "bias"

// One thing that writes to the residual stream at the position. Per component c [D]:
//   value = ((c − mean(c)) / σ_p ⊙ w_ln) · u    (LayerNorm models; σ_p = ln_final.hook_scale at p)
//   value = c · u                               (no LayerNorm)
// u = W_U[:, target] (− W_U[:, against]). Constant components (biases b_O, b_U, ln_final.b)
// are counted like any other: b_U contributes b_U·(e_target − e_against), ln_final.b its b·u.
struct DlaComponent {
  DlaKind kind = DlaKind::Embed;
  int layer = -1;    // -1 outside the blocks
  int head = -1;     // heads only
  std::string name;  // where it comes from: a hook ("blocks.0.attn.hook_result") or a parameter ("unembed.b_U")
  double value = 0;
  // Heads with DlaOptions::per_source: value per source position s = 0..p, from
  // pattern[p,s]·v_s·W_O (b_V included in v); sums to `value`. Empty otherwise.
  std::vector<double> by_source;
};

struct DlaOptions {
  int64_t position = -1;  // query position p; negative counts from the end (−1: the last)
  int64_t target = 0;     // output-vocab id (the model's own id)
  int64_t against = -1;   // output-vocab id, or −1 for the plain logit of `target`
  bool per_source = false;
};

struct DlaResult {
  int64_t position = 0;  // p, resolved to 0..T−1
  int64_t target = 0, against = -1;
  double logit = 0;      // the model's logit[p, target] (− logit[p, against]) from the forward pass
  double sum = 0;        // Σ components' values (equals `logit` up to float rounding)
  double ln_scale = 0;   // σ_p, the frozen final LayerNorm scale; 0 when the model has no LayerNorm
  bool has_pos_embed = true;  // false for shortformer models (W_pos never enters the residual stream)
  // In forward order: embed, pos_embed, then per layer its heads, its b_O, its MLP; then
  // unembed.b_U and ln_final.b (each only when the model has it).
  std::vector<DlaComponent> components;
};

// tokens: the prompt's model ids (no batch). One forward pass with a cache of the hooks that
// write to the residual stream (run_with_cache); no second forward implementation.
// Error (circuitlab::Error) naming the option for an empty prompt, a position or target out of
// range, target == against.
DlaResult direct_logit_attribution(models::HookedTransformer& model, const std::vector<int64_t>& tokens,
                                   const DlaOptions& opts);

}  // namespace circuitlab::analysis
