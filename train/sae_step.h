// One SAE training step, hand-written: the dense encoder product is the one full GEMM (models/gemm);
// the decode gathers the active rows of W_dec, and the decoder and encoder gradients are taken
// only where latents fired (plus, for JumpReLU, where a pre-activation lies within the STE's
// bandwidth of its threshold). Then Adam, with decoder rows kept at unit norm (the gradient's
// component parallel to each row removed before the step, rows renormalised after).
// Losses (N tokens, x already normalised; SAELens's definitions):
//   MSE       Σ_b ‖x̂_b − x_b‖² / N
//   standard  + λ Σ_b Σ_j f_bj ‖W_dec_j‖ / N                       (L1 weighted by decoder norm)
//   JumpReLU  + λ Σ_b Σ_j H(pre_bj − θ_j) / N, θ = exp(log θ), rectangle-kernel STE of width ε
//   TopK, BatchTopK + α·min(1, n_dead/k_aux)·Σ_b ‖e_b − ê_b‖² / N (AuxK, Gao et al. 2024: ê from
//             the k_aux largest dead pre-activations through W_dec, e = x − x̂ held fixed)
// Not the activation store (sae_activation_store.h) nor the loop (sae_trainer.h).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/sae.h"

namespace circuitlab::train {

struct SaeStepOptions {
  double lr = 4e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double l1_coefficient = 5.0;        // standard: λ of the weighted L1; JumpReLU: λ of the L0
  double aux_coefficient = 1.0 / 32;  // AuxK's α (Gao et al.)
  int64_t k_aux = 0;                  // 0: d_in / 2 (SAELens)
  int64_t dead_tokens = 1000000;      // a latent silent this many tokens is dead (AuxK, resampling)
  double jumprelu_bandwidth = 0.001;  // ε of the STE (on normalised activations)
  double jumprelu_init_threshold = 0.001;
  double batchtopk_threshold_lr = 0.01;  // EMA rate of the inference threshold (min selected act)
};

// Gradients of one batch, in the training layout.
struct SaeGrads {
  torch::Tensor W_encT;         // [S, d] (the encoder stored row-per-latent while training)
  torch::Tensor W_dec;          // [S, d]
  torch::Tensor b_enc;          // [S]
  torch::Tensor b_dec;          // [d]
  torch::Tensor log_threshold;  // [S] JumpReLU only
  // Bookkeeping of the batch, for apply(): tokens on which each latent fired [S] (float, so that
  // data-parallel ranks sum it with the gradients), the batch's tokens, and (BatchTopK) the
  // smallest selected activation (-1: none).
  torch::Tensor fired;
  int64_t tokens = 0;
  double min_act = -1;
};

struct SaeStepStats {
  double loss = 0, mse = 0, sparsity_loss = 0, aux_loss = 0;
  double l0 = 0;                  // mean active latents per token
  double explained_variance = 0;  // of this batch (display only; evaluation uses the whole sample)
  int64_t fired_latents = 0;      // latents active at least once in the batch
};

// Parameters (training layout, normalised activation space), Adam moments and the dead-latent
// clock of one SAE. Everything that a bit-identical resume needs is in tensors().
class SaeTrainingState {
 public:
  SaeTrainingState(models::SaeConfig cfg, SaeStepOptions opt);

  // Initialises from a sample of raw activations [M, d]: the normalisation factor
  // s = √d / mean‖x‖, decoder rows from `seed` (unit norm; 0.1 for standard), W_enc = W_decᵀ,
  // b_enc = 0, b_dec = the mean (or, geometric_median, the geometric median) of s·x.
  void init(const torch::Tensor& sample, uint64_t seed, bool geometric_median = false);
  // Overrides the normalisation factor (1 = none); call before training.
  void set_scale(double s) { scale_ = s; }
  double scale() const { return scale_; }

  // Loss and gradients on raw activations x [N, d] (normalised inside), no update.
  SaeStepStats compute_grads(const torch::Tensor& x, SaeGrads& grads);
  // Adam on `grads` (the decoder gradient's parallel component removed first), decoder
  // renormalisation, the dead-latent clock and firing counts (+ the BatchTopK threshold).
  // Data parallel: every rank applies the same all-reduced grads (fired summed, tokens summed).
  void apply(SaeGrads& grads);
  // compute_grads + apply.
  SaeStepStats step(const torch::Tensor& x);

  // Resampling of dead latents for the standard (L1) SAE (Anthropic, "Towards Monosemanticity"):
  // each latent silent for dead_tokens gets, as decoder row, the direction of an input of the
  // batch x [N, d] drawn with probability ∝ (its squared reconstruction error)² (x − b_dec,
  // scaled to the mean alive decoder norm), as encoder row the same direction at 0.2 × the
  // mean alive encoder norm, b_enc 0, fresh Adam moments and a reset clock. Returns how many.
  int64_t resample_dead(const torch::Tensor& x, uint64_t seed);

  // The SAE in SAELens form with the normalisation folded in (W_enc·s, W_dec/s, b_dec/s).
  models::SparseAutoencoder export_sae() const;
  // The same SAE unfolded (normalised space), the form the gradients refer to.
  models::SparseAutoencoder current_sae() const;

  const torch::Tensor& tokens_since_fired() const { return since_fired_; }  // [S] int64
  double dead_fraction() const;
  // log10 of each latent's firing density over every step so far (+1e-10), SAELens's sparsity.
  torch::Tensor log10_density() const;
  int64_t steps() const { return steps_; }
  const models::SaeConfig& cfg() const { return cfg_; }
  const SaeStepOptions& options() const { return opt_; }

  // Every tensor of the state (parameters, moments, clocks, scalars as 0-d tensors) by name,
  // and back; Error naming `where` on a missing tensor or a wrong shape.
  std::map<std::string, torch::Tensor> tensors() const;
  void load_tensors(const std::map<std::string, torch::Tensor>& t, const std::string& where);

  // Parameters in the training layout (tests set them directly).
  torch::Tensor W_encT, W_dec, b_enc, b_dec, log_threshold;  // [S,d] [S,d] [S] [d] [S]
  double batchtopk_threshold = 0;

 private:
  void adam(torch::Tensor& p, torch::Tensor& g, torch::Tensor& m, torch::Tensor& v, int64_t t) const;
  models::SaeConfig cfg_;
  SaeStepOptions opt_;
  double scale_ = 1;
  int64_t steps_ = 0;
  torch::Tensor since_fired_;  // [S] tokens since each latent last fired
  std::map<std::string, torch::Tensor> m_, v_;  // Adam moments by parameter name
  SaeGrads grads_;
  torch::Tensor pre_;          // [N, S] pre-activations, reused across steps
  torch::Tensor fire_counts_;  // [S] int64, over the whole run
  int64_t tokens_seen_ = 0;
};

}  // namespace circuitlab::train
