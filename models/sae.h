// Sparse autoencoders (an SAE is a model of one hook point's activations) and their file format,
// SAELens's directory layout: cfg.json + sae_weights.safetensors + sparsity.safetensors.
// Four architectures share the same tensors and differ only in the nonlinearity (SAELens's
// encode/decode): standard ReLU, TopK, BatchTopK (saved as JumpReLU, as SAELens does), JumpReLU.
// Not a trainer (train/sae_trainer.h) and not an evaluation (analysis/sae_eval.h).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace circuitlab::models {

enum class SaeArchitecture { Standard, TopK, BatchTopK, JumpReLU };
// "standard", "topk", "batchtopk", "jumprelu" (cfg.json's `architecture`).
const char* sae_architecture_name(SaeArchitecture a);
// Error naming `where` for any other name ("relu" is accepted as "standard").
SaeArchitecture parse_sae_architecture(const std::string& name, const std::string& where);

struct SaeConfig {
  SaeArchitecture architecture = SaeArchitecture::TopK;
  int64_t d_in = 0;
  int64_t d_sae = 0;
  int64_t k = 0;  // TopK / BatchTopK: active latents per token (BatchTopK: on average)
  bool apply_b_dec_to_input = true;
  // "none" on disk (the training normalisation is folded into the weights when saving).
  std::string normalize_activations = "none";
  // metadata (SAELens's `metadata` object)
  std::string model_name;
  std::string hook_name;
  int64_t hook_head_index = -1;  // -1: null (hook_z: all heads concatenated)
  int64_t context_size = 0;
  bool prepend_bos = false;
};

// Error "<where>: field '<f>' ..." for d_in/d_sae < 1, k outside [1, d_sae) for the TopK family,
// an unknown hook name.
void validate_sae_config(const SaeConfig& cfg, const std::string& where);

// The four tensors of every architecture (row-vector convention: x · W_enc), float32 on the CPU.
// N: tokens, d: d_in, S: d_sae.
struct SparseAutoencoder {
  SaeConfig cfg;
  torch::Tensor W_enc;      // [d, S]
  torch::Tensor W_dec;      // [S, d]
  torch::Tensor b_enc;      // [S]
  torch::Tensor b_dec;      // [d]
  torch::Tensor threshold;  // [S] JumpReLU and BatchTopK (a global threshold, broadcast); undefined otherwise
  torch::Tensor log10_density;  // [S] from sparsity.safetensors when present (log10 firing density)

  // Zero tensors of the config's shapes (validate_sae_config first).
  explicit SparseAutoencoder(SaeConfig c);

  // (x - b_dec·[apply_b_dec_to_input]) · W_enc + b_enc: x [N, d] -> [N, S].
  torch::Tensor pre_activations(const torch::Tensor& x) const;
  // The architecture's nonlinearity at inference: standard relu(pre); TopK the k largest pre
  // per row, then relu; JumpReLU and BatchTopK relu(pre)·[pre > threshold].
  torch::Tensor activate(const torch::Tensor& pre) const;
  // BatchTopK at train time: the k·N largest relu(pre) over the whole batch [N, S].
  torch::Tensor activate_batch_topk(const torch::Tensor& pre) const;
  torch::Tensor encode(const torch::Tensor& x) const { return activate(pre_activations(x)); }
  // f [N, S] -> f · W_dec + b_dec [N, d] (dense).
  torch::Tensor decode(const torch::Tensor& f) const;
};

// Sparse decode: rows b of idx/val [N, k] (latent ids, activations; zeros allowed) ->
// b_dec + Σ_i val[b,i] · W_dec[idx[b,i]]: [N, d]. Gathers k rows of W_dec per token.
torch::Tensor sae_sparse_decode(const torch::Tensor& idx, const torch::Tensor& val, const torch::Tensor& W_dec,
                                const torch::Tensor& b_dec);

// An SAE's input from the activation at its hook: act [..., d] -> [N, d]; hook_z [..., H, Dh]
// -> [N, H·Dh] (heads concatenated) or, with hook_head_index h, [N, Dh] of head h.
// Error naming the hook when the trailing size is not d_in.
torch::Tensor sae_input_from_hook(const torch::Tensor& act, const SaeConfig& cfg);
// The inverse for splicing a reconstruction back: recon [N, d_in] into a copy of `act`
// (with hook_head_index, only that head is replaced).
torch::Tensor sae_output_to_hook(const torch::Tensor& recon, const torch::Tensor& act, const SaeConfig& cfg);

// SAELens directory. Loading accepts SAELens ≥ 6 (`metadata` object, top-level `k`) and the
// older flat layout (metadata keys at the top, `activation_fn_kwargs.k`); BatchTopK reads back
// as JumpReLU. Errors name the file and the field or tensor.
SparseAutoencoder load_sae(const std::string& dir);
// Writes cfg.json, sae_weights.safetensors and (when log10_density is defined)
// sparsity.safetensors, each atomically; cfg.json last. BatchTopK is written as JumpReLU.
void save_sae(const SparseAutoencoder& sae, const std::string& dir);

}  // namespace circuitlab::models
