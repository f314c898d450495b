// Hand-written training forward + backward for CPU transformers (float32/float64): attention-
// only toys and GPT-2 blocks (pre-LN LayerNorm, attention with or without biases, GELU/ReLU
// MLP, standard or shortformer positions, tied or untied unembedding). The same math as
// HookedTransformer::forward followed by mean cross-entropy and autograd, without the autograd
// graph: preallocated buffers, the [B·T, V] logits never whole (fast_ops.h), LayerNorm backward
// fused with the residual stream's gradient, GEMMs through models/gemm.h.
// Not an optimizer (the trainer keeps torch AdamW + clip_grad_norm_) and not for hooks, CUDA,
// frozen parameters or other layer kinds: supports() says no and the caller uses autograd.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/hooked_transformer.h"

namespace circuitlab::train {

class FastTransformer {
 public:
  // Whether `model` (its config, device and dtype) is covered; `why` (optional) says why not.
  static bool supports(const models::HookedTransformer& model, std::string* why = nullptr);

  // Binds to the model's parameters (shared storage; later weight updates are seen).
  // Error when !supports(model).
  explicit FastTransformer(models::HookedTransformer model);
  ~FastTransformer();
  FastTransformer(const FastTransformer&) = delete;
  FastTransformer& operator=(const FastTransformer&) = delete;

  // tokens x, targets y: [b, T] integer ids (T <= n_ctx). Returns the mean next-token
  // cross-entropy (as torch cross_entropy, reduction mean) and ADDS grad_scale · ∂loss/∂p to
  // every trainable parameter's .grad() (defining it as zeros first where undefined), as
  // (loss · grad_scale).backward() would.
  double forward_backward(const torch::Tensor& x, const torch::Tensor& y, double grad_scale = 1.0);

  // "fast_attn_only" (no LayerNorm, no MLP) or "fast_gpt2_blocks": summary.json's train_path.
  const char* path_name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace circuitlab::train
