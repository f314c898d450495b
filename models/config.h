// Model configuration: TransformerLens HookedTransformerConfig keys for the toy family, and
// the mapping from a Hugging Face GPT-2 config.json into the same struct. No LibTorch here.
// One field list (visit_fields) drives reading, writing, range checks and equality.
//
// Conventions for all of models/: row vectors (x · W) as in TransformerLens. Shapes use the
// alphabet B batch, T position, D d_model, H heads, Dh d_head, V vocab, L layers.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace circuitlab::models {

// TL normalization_type: "LN" or None (null in config.json).
enum class Normalization { None, LN };
// Which on-disk layout a model dir uses: TL names ("toy") or Hugging Face GPT-2 ("gpt2").
enum class ModelFamily { Toy, Gpt2 };
// JSON spellings: "LN" / "" (written as null); "toy" / "gpt2".
const char* to_string(Normalization n);
const char* to_string(ModelFamily f);

// How a field of the list behaves in config.json. Bounds are inclusive.
struct FieldSpec {
  bool required = false;  // a toy config.json must carry it
  bool null_is_unset = false;  // -1 <-> null (d_mlp, d_vocab_out)
  int64_t min = INT64_MIN;     // integer fields: smallest valid value (unset fields excluded)
  const char* expected = nullptr;  // for messages: "an integer", "true or false", ...
};

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
  // Code builds attention-only toys by default; config.json must say (TL's own default is
  // False, so a missing key is an Error rather than a guess either way).
  bool attn_only = true;
  Normalization normalization_type = Normalization::LN;
  std::string positional_embedding_type = "standard"; // "standard" | "shortformer"
  std::string act_fn = "gelu_new";
  double eps = 1e-5;
  double initializer_range = -1;  // -1: 0.8 / sqrt(d_model) as TransformerLens "gpt2" init
  int seed = 0;
  // --- circuitlab additions ---
  bool use_bias = true;           // b_Q, b_K, b_V, b_O, b_U (and MLP biases) present
  ModelFamily family = ModelFamily::Toy;  // toy: TL layout on disk; gpt2: HF layout on disk
  bool tied_unembed = false;      // GPT-2: W_U = W_Eᵀ

  int vocab_out() const { return d_vocab_out > 0 ? d_vocab_out : d_vocab; }
  int mlp_dim() const { return d_mlp > 0 ? d_mlp : 4 * d_model; }
  bool has_ln() const { return normalization_type == Normalization::LN; }
  bool shortformer() const { return positional_embedding_type == "shortformer"; }
  bool gpt2() const { return family == ModelFamily::Gpt2; }
  double init_range() const;

  // The field list. `v.top(key, field, spec)` visits a top-level TL key, `v.ext(key, field)`
  // one under config.json's "circuitlab" key, `v.derived(field)` one that is not stored in a
  // toy config.json (set by the GPT-2 reader). Reading follows this order (sizes first);
  // config.json's keys are written sorted.
  template <class Self, class V>
  static void visit_fields(Self& c, V&& v) {
    v.top("n_layers", c.n_layers, FieldSpec{true, false, 0, "an integer"});
    v.top("d_model", c.d_model, FieldSpec{true, false, 1, "an integer"});
    v.top("d_head", c.d_head, FieldSpec{true, false, 1, "an integer"});
    v.top("n_ctx", c.n_ctx, FieldSpec{true, false, 1, "an integer"});
    v.top("d_vocab", c.d_vocab, FieldSpec{true, false, 1, "an integer"});
    v.top("n_heads", c.n_heads, FieldSpec{false, true, 1, "an integer"});
    v.top("d_vocab_out", c.d_vocab_out, FieldSpec{false, true, 1, "an integer"});
    v.top("attn_only", c.attn_only, FieldSpec{true, false, INT64_MIN, "true or false"});
    v.top("d_mlp", c.d_mlp, FieldSpec{false, true, INT64_MIN, "an integer or null"});  // checked when !attn_only
    v.top("normalization_type", c.normalization_type, FieldSpec{false, false, INT64_MIN, "\"LN\" or null"});
    v.top("positional_embedding_type", c.positional_embedding_type, FieldSpec{false, false, INT64_MIN, "a string"});
    v.top("act_fn", c.act_fn, FieldSpec{false, false, INT64_MIN, "a string"});
    v.top("eps", c.eps, FieldSpec{false, false, INT64_MIN, "a number"});
    v.top("initializer_range", c.initializer_range, FieldSpec{false, false, INT64_MIN, "a number"});
    v.top("seed", c.seed, FieldSpec{false, false, INT64_MIN, "an integer"});
    v.ext("use_bias", c.use_bias);
    v.derived(c.family);
    v.derived(c.tied_unembed);
  }

  // Throws circuitlab::Error naming `where` and the field when a value is out of range or
  // the fields are inconsistent.
  void validate(const std::string& where) const;
};

// Every field of the list (derived ones included) equal.
bool operator==(const ModelConfig& a, const ModelConfig& b);
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

// TransformerLens-style config.json (toy family): the list's values with d_vocab_out, d_mlp and
// initializer_range resolved, plus the constant keys init_mode and circuitlab.format.
nlohmann::json to_json(const ModelConfig& c);
// Reads either family: TL keys, or HF GPT-2 keys (model_type "gpt2", n_layer, n_head, ...).
ModelConfig config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace circuitlab::models
