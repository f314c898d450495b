// HookedTransformer: the one model class behind every analysis, the trainer and the lab.
// Attention-only toys (0..N layers), toys with MLP blocks and GPT-2 share it; every
// intermediate passes a named hook point (TransformerLens names, DESIGN.md contract 2).
// Not a loader: model_dir.h reads and writes model directories.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/config.h"

namespace circuitlab::models {

// A hook sees the activation at a hook point and may return a replacement (same shape).
using HookFn = std::function<std::optional<torch::Tensor>(const torch::Tensor& act, const std::string& name)>;
using NamesFilter = std::function<bool(const std::string& name)>;
using ActivationCache = std::map<std::string, torch::Tensor>;

struct ForwardOptions {
  // [B,T] 1 for real tokens, 0 for padding (right padding). Undefined: all real.
  torch::Tensor attention_mask;
  // Per-layer frozen attention patterns [B,H,T,T] to use instead of computing them
  // (pattern-preserving ablations, term importance). Empty or undefined entries: computed.
  std::vector<torch::Tensor> frozen_patterns;
};

class HookedTransformerImpl : public torch::nn::Module {
 public:
  // init_weights=false leaves parameters uninitialised (torch::empty), for loaders that
  // overwrite every tensor: no wasted init, no RSS for pages never written.
  explicit HookedTransformerImpl(ModelConfig cfg, bool init_weights = true);

  // tokens [B,T] int64 (T <= n_ctx, else Error) -> logits [B,T,V_out].
  torch::Tensor forward(const torch::Tensor& tokens, const ForwardOptions& opts = {});

  const ModelConfig& cfg() const { return cfg_; }
  // Every hook point name of this model, in forward order (the documented list).
  std::vector<std::string> hook_names() const;
  bool has_hook_point(const std::string& name) const;
  // Number of scalar parameters (tied unembedding counted once).
  int64_t num_parameters() const;

  // Hooks and caching. Prefer the RAII helpers below over these.
  int add_hook(const std::string& name, HookFn fn);  // returns a handle; Error on unknown name
  void remove_hook(int handle);
  void clear_hooks();
  void set_cache(ActivationCache* cache, NamesFilter filter);  // nullptr: caching off
  // Cached activations are detached (as TransformerLens); set true to keep the graph
  // (gradient-based attribution through cached activations).
  void set_cache_keep_graph(bool keep);

  // Parameters by TransformerLens name ("embed.W_E", "blocks.0.attn.W_Q", ...).
  std::map<std::string, torch::Tensor> state_dict() const;
  // Copies tensors in by TL name; Error naming a missing tensor or a wrong shape.
  void load_state_dict(const std::map<std::string, torch::Tensor>& sd, const std::string& where);

  // Weight accessors (TL shapes). W_U is Eᵀ for tied models.
  torch::Tensor W_E() const;          // [V, D]
  torch::Tensor W_pos() const;        // [n_ctx, D]
  torch::Tensor W_U() const;          // [D, V_out]
  torch::Tensor W_Q(int layer) const; // [H, D, Dh]
  torch::Tensor W_K(int layer) const; // [H, D, Dh]
  torch::Tensor W_V(int layer) const; // [H, D, Dh]
  torch::Tensor W_O(int layer) const; // [H, Dh, D]
  torch::Tensor b_U() const;          // [V_out] (zeros when the model has none)

 private:
  struct Impl;
  ModelConfig cfg_;
  std::shared_ptr<Impl> impl_;
};
TORCH_MODULE(HookedTransformer);

// Removes its hooks when it goes out of scope (exceptions included).
class HookGuard {
 public:
  explicit HookGuard(HookedTransformer model) : model_(std::move(model)) {}
  ~HookGuard();
  HookGuard(const HookGuard&) = delete;
  HookGuard& operator=(const HookGuard&) = delete;
  void add(const std::string& name, HookFn fn);

 private:
  HookedTransformer model_;
  std::vector<int> handles_;
};

// run_with_cache: logits and the activations whose names pass `filter` (all when empty).
std::pair<torch::Tensor, ActivationCache> run_with_cache(HookedTransformer& model, const torch::Tensor& tokens,
                                                         NamesFilter filter = {}, const ForwardOptions& opts = {});
// run_with_hooks: logits with `hooks` installed for this call only.
torch::Tensor run_with_hooks(HookedTransformer& model, const torch::Tensor& tokens,
                             const std::vector<std::pair<std::string, HookFn>>& hooks,
                             const ForwardOptions& opts = {});

// BOS handling, the same everywhere: prepend_bos (default on, as TransformerLens) puts
// <|endoftext|> (50256, or its compact id) in front.
constexpr int64_t kGpt2Bos = 50256;
// tokens [B,T] (or [T]) -> [B,T+1] with `bos` in front.
torch::Tensor prepend_bos(const torch::Tensor& tokens, int64_t bos = kGpt2Bos);
// Right-padded batch of unequal sequences: tokens [B,Tmax] (pad_id after the end) and the
// matching attention_mask [B,Tmax] (1 real, 0 pad) for ForwardOptions.
std::pair<torch::Tensor, torch::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id = kGpt2Bos);

}  // namespace circuitlab::models
