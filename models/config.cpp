// ModelConfig <-> config.json: TransformerLens HookedTransformerConfig keys for toys (our
// extras under one "circuitlab" key, so TL users pop a single key), and Hugging Face GPT-2
// config.json mapped onto the same struct. Every toy field is read, written, range-checked
// and compared through ModelConfig::visit_fields. Not a model loader (model_dir.cpp).
#include "models/config.h"

#include <cmath>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"

namespace circuitlab::models {

using nlohmann::json;

const char* to_string(Normalization n) { return n == Normalization::LN ? "LN" : ""; }
const char* to_string(ModelFamily f) { return f == ModelFamily::Gpt2 ? "gpt2" : "toy"; }

double ModelConfig::init_range() const {
  return initializer_range > 0 ? initializer_range : 0.8 / std::sqrt(static_cast<double>(d_model));
}

namespace {

// Range checks of the list's integer bounds.
struct Checker {
  const std::string& where;
  void top(const char* key, const int& v, const FieldSpec& s) const {
    if (s.null_is_unset && v == -1) return;
    if (v < s.min)
      fail(where + ": config field '" + key + "' must be >= " + std::to_string(s.min) +
           (s.null_is_unset ? " (or -1/null: unset)" : "") + ", got " + std::to_string(v));
  }
  template <class T>
  void top(const char*, const T&, const FieldSpec&) const {}
  template <class T>
  void ext(const char*, const T&) const {}
  template <class T>
  void derived(const T&) const {}
};

// Every field as stored (unresolved, derived ones included): what equality compares.
struct RawWriter {
  json& j;
  template <class T>
  void top(const char* key, const T& v, const FieldSpec&) const { put(key, v); }
  template <class T>
  void ext(const char* key, const T& v) const { put(std::string("circuitlab.") + key, v); }
  void derived(const ModelFamily& f) const { j["family"] = to_string(f); }
  void derived(const bool& tied) const { j["tied_unembed"] = tied; }
  template <class T>
  void put(const std::string& key, const T& v) const {
    if constexpr (std::is_enum_v<T>) j[key] = static_cast<int>(v);
    else j[key] = v;
  }
};

// Writes the (resolved) toy fields.
struct Writer {
  json& j;
  json& ext_j;
  void top(const char* key, const int& v, const FieldSpec& s) const {
    j[key] = s.null_is_unset && v == -1 ? json(nullptr) : json(v);
  }
  void top(const char* key, const Normalization& v, const FieldSpec&) const {
    j[key] = v == Normalization::LN ? json("LN") : json(nullptr);
  }
  template <class T>
  void top(const char* key, const T& v, const FieldSpec&) const { j[key] = v; }
  template <class T>
  void ext(const char* key, const T& v) const { ext_j[key] = v; }
  template <class T>
  void derived(const T&) const {}
};

// Reads the toy fields: required ones must be present; absent or null optional ones keep
// the struct's default (null_is_unset: -1).
struct Reader {
  json_fields::Object& o;
  const json* ext_obj;  // config.json's "circuitlab" object, or nullptr
  const std::string& where;
  void top(const char* key, Normalization& v, const FieldSpec& s) const {
    if (!o.has(key)) return;  // TL default "LN"
    if (!o.has_value(key)) {
      v = Normalization::None;
      return;
    }
    const std::string t = o.req<std::string>(key, s.expected);
    if (t != "LN") fail(where + ": config field 'normalization_type' must be \"LN\" or null, got \"" + t + "\"");
    v = Normalization::LN;
  }
  template <class T>
  void top(const char* key, T& v, const FieldSpec& s) const {
    if (s.required) v = o.req<T>(key, s.expected);
    else o.opt(key, v, s.expected);
  }
  template <class T>
  void ext(const char* key, T& v) const {
    if (!ext_obj) return;
    auto it = ext_obj->find(key);
    if (it != ext_obj->end() && !it->is_null()) v = json_fields::as<T>(*it, where + " [circuitlab]", key);
  }
  template <class T>
  void derived(T&) const {}
};

}  // namespace

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  json ja, jb;
  ModelConfig::visit_fields(a, RawWriter{ja});
  ModelConfig::visit_fields(b, RawWriter{jb});
  return ja == jb;
}

void ModelConfig::validate(const std::string& where) const {
  auto bad = [&](const std::string& field, const std::string& expected) {
    fail(where + ": config field '" + field + "' " + expected);
  };
  visit_fields(*this, Checker{where});
  if (!attn_only && d_mlp == 0) bad("d_mlp", "must be > 0 when attn_only is false");
  if (positional_embedding_type != "standard" && positional_embedding_type != "shortformer")
    bad("positional_embedding_type", "must be \"standard\" or \"shortformer\", got \"" + positional_embedding_type + "\"");
  if (!attn_only && act_fn != "gelu_new" && act_fn != "gelu" && act_fn != "relu")
    bad("act_fn", "must be gelu_new, gelu or relu, got \"" + act_fn + "\"");
  if (!(eps > 0)) bad("eps", "must be > 0");
  if (tied_unembed && vocab_out() != d_vocab) bad("d_vocab_out", "must equal d_vocab when the unembedding is tied");
}

json to_json(const ModelConfig& c) {
  ModelConfig r = c;  // resolved: what the model actually uses
  r.d_vocab_out = c.vocab_out();
  r.d_mlp = c.attn_only ? -1 : c.mlp_dim();
  r.initializer_range = c.init_range();
  json j;
  json ext = {{"format", "circuitlab-model-v1"}, {"family", "toy"}};  // always TL layout on export
  ModelConfig::visit_fields(r, Writer{j, ext});
  j["init_mode"] = "gpt2";
  if (c.gpt2()) j["original_architecture"] = "GPT2LMHeadModel";
  j["circuitlab"] = ext;
  return j;
}

namespace {

ModelConfig gpt2_from_hf(const json& j, const std::string& where) {
  json_fields::Object o(j, where);
  ModelConfig c;
  c.family = ModelFamily::Gpt2;
  c.n_layers = o.req<int>("n_layer", "an integer");
  c.d_model = o.req<int>("n_embd", "an integer");
  c.n_heads = o.req<int>("n_head", "an integer");
  if (c.n_heads <= 0 || c.d_model % c.n_heads != 0)
    fail(where + ": config field 'n_head' (" + std::to_string(c.n_heads) + ") must divide n_embd (" +
         std::to_string(c.d_model) + ")");
  c.d_head = c.d_model / c.n_heads;
  c.n_ctx = o.req<int>("n_positions", "an integer");
  c.d_vocab = o.req<int>("vocab_size", "an integer");
  c.d_vocab_out = c.d_vocab;
  c.d_mlp = o.get_or<int>("n_inner", 4 * c.d_model, "an integer or null");
  c.attn_only = false;
  c.normalization_type = Normalization::LN;
  c.positional_embedding_type = "standard";
  c.act_fn = o.get_or<std::string>("activation_function", "gelu_new", "a string");
  c.eps = o.get_or<double>("layer_norm_epsilon", 1e-5, "a number");
  c.initializer_range = o.get_or<double>("initializer_range", 0.02, "a number");
  c.use_bias = true;
  c.tied_unembed = true;
  if (c.act_fn != "gelu_new")
    fail(where + ": config field 'activation_function' must be \"gelu_new\" for GPT-2, got \"" + c.act_fn + "\"");
  return c;
}

}  // namespace

ModelConfig config_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where + ": expected a JSON object");
  if ((j.contains("model_type") && j["model_type"] == "gpt2") || j.contains("n_layer")) {
    ModelConfig c = gpt2_from_hf(j, where);
    c.validate(where);
    return c;
  }
  if (j.contains("model_type"))
    fail(where + ": config field 'model_type' is " + j["model_type"].dump() + ", expected \"gpt2\" or TransformerLens keys");
  // TL configs carry many keys we do not use (TL's to_dict writes them all): no unknown-key
  // check at the top level.
  json_fields::Object o(j, where);
  const json* ext = o.opt_object("circuitlab");
  ModelConfig c;
  c.n_heads = -1;  // TL: None, then d_model / d_head
  ModelConfig::visit_fields(c, Reader{o, ext, where});
  if (c.n_heads == -1 && c.d_head > 0) c.n_heads = c.d_model / c.d_head;  // TL default
  c.family = ModelFamily::Toy;
  c.tied_unembed = false;
  c.validate(where);
  return c;
}

}  // namespace circuitlab::models
