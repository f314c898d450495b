// SAE evaluation with SAELens's definitions (sae_lens/evals.py), over sequential windows of a
// token shard (no BOS added, the model's compact vocabulary):
//   L0                  mean over tokens of #{j : f_j > 0}
//   explained_variance  1 − Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t − x̄‖²   (x̄ and both sums over the WHOLE sample)
//   mse                 mean over tokens and dimensions of (x − x̂)²
//   cosine              mean over tokens of cos(x_t, x̂_t)
//   l2_ratio            mean over tokens of ‖x̂_t‖ / ‖x_t‖
//   ce_loss_score       (CE_zero − CE_sae) / (CE_zero − CE_clean): next-token cross-entropy with the
//                       hook's activation replaced by the reconstruction (run_with_hooks) or by zeros
//   kl_score            (KL_zero − KL_sae) / KL_zero, KL(clean ‖ patched) of the next-token
//                       distributions, mean over tokens
//   frac_dead           latents that never fired in the sample
//   frac_dense_1pct / _10pct  latents firing on more than 1% / 10% of the tokens
// Not a trainer; never changes the model or the SAE.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"
#include "models/sae.h"

namespace circuitlab::analysis {

struct SaeEvalOptions {
  int64_t tokens = 16384;  // evaluated tokens (whole windows; at least one window)
  int64_t context = 0;     // window length (0: the SAE's context_size, else min(n_ctx, 128))
  int64_t batch_windows = 8;
};

struct SaeEvalResult {
  int64_t tokens = 0;
  double l0 = 0, explained_variance = 0, mse = 0, cosine = 0, l2_ratio = 0;
  double ce_clean = 0, ce_sae = 0, ce_zero = 0, ce_loss_score = 0;
  double kl_sae = 0, kl_zero = 0, kl_score = 0;
  double frac_dead = 0, frac_dense_1pct = 0, frac_dense_10pct = 0;
};

// Error naming the hook when the model has no such point or its width is not d_in; Error when
// the shard holds fewer than context + 1 tokens.
SaeEvalResult evaluate_sae(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                           std::shared_ptr<const data::TokenShard> shard, const std::optional<data::VocabMap>& vocab_map,
                           const SaeEvalOptions& opt);

}  // namespace circuitlab::analysis
