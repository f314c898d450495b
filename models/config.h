// Model configuration: TransformerLens HookedTransformerConfig keys for the toy family, and
// the mapping from a Hugging Face GPT-2 config.json into the same struct. No LibTorch here.
//
// Conventions for all of models/: row vectors (x · W) as in TransformerLens. Shapes use the
// alphabet B batch, T position, D d_model, H heads, Dh d_head, V vocab, L layers.
#pragma once
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace circuitlab::models {

struct ModelConfig {
  // --- TransformerLens HookedTransformerConfig keys (written to config.json as such) ---
  int n_layers = 2;
  int d_model = 128;
  int n_heads = 4;
  int d_head = 32;
  int n_ctx = 256;
  int d_vocab = 50257;
  int d_vocab_out = -1;   // -1: same as d_vocab
  int d_mlp = -1;         // -1: 4 * d_model; unused when attn_only
  bool attn_only = true;
  std::string normalization_type = "LN";              // "LN" or "" (TL None)
  std::string positional_embedding_type = "standard"; // "standard" | "shortformer"
  std::string act_fn = "gelu_new";
  double eps = 1e-5;
  double initializer_range = -1;  // -1: 0.8 / sqrt(d_model) as TransformerLens "gpt2" init
  int seed = 0;
  // --- circuitlab additions ---
  bool use_bias = true;           // b_Q, b_K, b_V, b_O, b_U (and MLP biases) present
  std::string family = "toy";     // "toy" (TL layout on disk) | "gpt2" (HF layout on disk)
  bool tied_unembed = false;      // GPT-2: W_U = W_Eᵀ

  int vocab_out() const { return d_vocab_out > 0 ? d_vocab_out : d_vocab; }
  int mlp_dim() const { return d_mlp > 0 ? d_mlp : 4 * d_model; }
  bool has_ln() const { return normalization_type == "LN"; }
  bool shortformer() const { return positional_embedding_type == "shortformer"; }
  double init_range() const;

  // Throws circuitlab::Error naming `where` and the field when a key is missing/inconsistent.
  void validate(const std::string& where) const;
};

// TransformerLens-style config.json (toy family).
nlohmann::json to_json(const ModelConfig& c);
// Reads either family: TL keys, or HF GPT-2 keys (model_type "gpt2", n_layer, n_head, ...).
ModelConfig config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace circuitlab::models
