// AdamW with TransformerLens-named parameter groups: weight decay on the matrices that
// multiply the residual stream (W_Q, W_K, W_V, W_O, W_U, mlp W_in/W_out), none on biases, LN
// and embeddings (W_E, W_pos) unless decay_embeddings. Not the schedule (lr_schedule.h).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/hooked_transformer.h"

namespace circuitlab::train {

struct NamedParam {
  std::string name;  // TransformerLens name ("blocks.0.attn.W_Q"), or the module name
  torch::Tensor param;
  bool decay = false;
};

// Every trainable parameter of `model`, in a fixed order (sorted by name), with its decay flag.
std::vector<NamedParam> named_trainable_params(models::HookedTransformer& model, bool decay_embeddings);

// Whether a TL parameter name gets weight decay.
bool decays(const std::string& tl_name, bool decay_embeddings);

struct AdamWSettings {
  double lr = 1e-3, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  bool decay_embeddings = false;
};

// Group 0: decayed parameters (weight_decay), group 1: the rest (0). Empty groups are kept so
// the group layout (and a saved optimizer state) does not depend on the model family.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<NamedParam>& params, const AdamWSettings& s);

void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace circuitlab::train
