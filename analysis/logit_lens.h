// Logit lens (nostalgebraist 2020; TransformerLens accumulated_resid + apply_ln): read the
// residual stream after each layer through the final LayerNorm and the unembedding.
// Not the tuned lens: no learned per-layer translators.
#pragma once
#include <string>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

// Names of the residual-stream stages, L+1 of them: the stream entering block 0 (embedding
// sum), then after each block (blocks.{l}.hook_resid_post).
std::vector<std::string> residual_stage_labels(const models::ModelConfig& cfg);
// Hook names run_with_cache must keep for residual_stages().
bool residual_stage_filter(const models::ModelConfig& cfg, const std::string& hook_name);

// Residual stream per stage, [L+1, B, T, D], from a cache holding residual_stage_filter's
// names (0-layer models: hook_embed (+ hook_pos_embed unless shortformer)).
torch::Tensor residual_stages(const models::ModelConfig& cfg, const models::ActivationCache& cache);

// Final LayerNorm (when the model has one) and unembedding of x [..., D] -> [..., V_out].
torch::Tensor apply_final_ln_and_unembed(models::HookedTransformer& model, const torch::Tensor& x);

// Logit lens over all stages: [L+1, B, T, V_out]. The last stage equals the model's logits.
torch::Tensor logit_lens(models::HookedTransformer& model, const models::ActivationCache& cache);

}  // namespace circuitlab::analysis
