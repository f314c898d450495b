// Hand-written training forward + backward for attention-only toys (no LayerNorm, untied
// unembedding, CPU, float32/float64): the same math as HookedTransformer::forward followed by
// mean cross-entropy and autograd, without the autograd graph and with preallocated buffers
// (no per-step allocation, no page faults), a chunked unembed + softmax + cross-entropy + its
// gradient that never materialises the [B·T, V] logits, and GEMMs on contiguous buffers.
// Not an optimizer (the trainer keeps torch AdamW + clip_grad_norm_) and not for models with
// LN, MLPs, tied embeddings, hooks or CUDA: supports() says no and the caller uses autograd.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/hooked_transformer.h"

namespace circuitlab::train {

class FastAttnOnly {
 public:
  // Whether `model` (its config, device and dtype) is covered; `why` (optional) says why not.
  static bool supports(const models::HookedTransformer& model, std::string* why = nullptr);

  // Binds to the model's parameters (shared storage; later weight updates are seen).
  // Error when !supports(model).
  explicit FastAttnOnly(models::HookedTransformer model);
  ~FastAttnOnly();
  FastAttnOnly(const FastAttnOnly&) = delete;
  FastAttnOnly& operator=(const FastAttnOnly&) = delete;

  // tokens x, targets y: [b, T] integer ids (T <= n_ctx). Returns the mean next-token
  // cross-entropy (as torch cross_entropy, reduction mean) and ADDS grad_scale · ∂loss/∂p to
  // every trainable parameter's .grad() (defining it as zeros first where undefined), as
  // (loss · grad_scale).backward() would.
  double forward_backward(const torch::Tensor& x, const torch::Tensor& y, double grad_scale = 1.0);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace circuitlab::train
