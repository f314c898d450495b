// ModelConfig <-> config.json: TransformerLens HookedTransformerConfig keys for toys (our
// extras under one "circuitlab" key, so TL users pop a single key), and Hugging Face GPT-2
// config.json mapped onto the same struct. Not a model loader (model_dir.cpp).
#include "models/config.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace circuitlab::models {

double ModelConfig::init_range() const {
  return initializer_range > 0 ? initializer_range : 0.8 / std::sqrt(static_cast<double>(d_model));
}

void ModelConfig::validate(const std::string& where) const {
  auto bad = [&](const std::string& field, const std::string& expected) {
    fail(where + ": config field '" + field + "' " + expected);
  };
  if (n_layers < 0) bad("n_layers", "must be >= 0, got " + std::to_string(n_layers));
  if (d_model <= 0) bad("d_model", "must be > 0, got " + std::to_string(d_model));
  if (n_heads <= 0) bad("n_heads", "must be > 0, got " + std::to_string(n_heads));
  if (d_head <= 0) bad("d_head", "must be > 0, got " + std::to_string(d_head));
  if (n_ctx <= 0) bad("n_ctx", "must be > 0, got " + std::to_string(n_ctx));
  if (d_vocab <= 0) bad("d_vocab", "must be > 0, got " + std::to_string(d_vocab));
  if (d_vocab_out == 0 || d_vocab_out < -1) bad("d_vocab_out", "must be > 0 (or -1: same as d_vocab)");
  if (!attn_only && d_mlp == 0) bad("d_mlp", "must be > 0 when attn_only is false");
  if (normalization_type != "LN" && !normalization_type.empty())
    bad("normalization_type", "must be \"LN\" or null, got \"" + normalization_type + "\"");
  if (positional_embedding_type != "standard" && positional_embedding_type != "shortformer")
    bad("positional_embedding_type", "must be \"standard\" or \"shortformer\", got \"" + positional_embedding_type + "\"");
  if (!attn_only && act_fn != "gelu_new" && act_fn != "gelu" && act_fn != "relu")
    bad("act_fn", "must be gelu_new, gelu or relu, got \"" + act_fn + "\"");
  if (!(eps > 0)) bad("eps", "must be > 0");
  if (family != "toy" && family != "gpt2") bad("family", "must be \"toy\" or \"gpt2\", got \"" + family + "\"");
  if (tied_unembed && vocab_out() != d_vocab) bad("d_vocab_out", "must equal d_vocab when the unembedding is tied");
}

nlohmann::json to_json(const ModelConfig& c) {
  nlohmann::json j;
  j["n_layers"] = c.n_layers;
  j["d_model"] = c.d_model;
  j["n_heads"] = c.n_heads;
  j["d_head"] = c.d_head;
  j["n_ctx"] = c.n_ctx;
  j["d_vocab"] = c.d_vocab;
  j["d_vocab_out"] = c.vocab_out();
  j["d_mlp"] = c.attn_only ? nlohmann::json(nullptr) : nlohmann::json(c.mlp_dim());
  j["attn_only"] = c.attn_only;
  j["act_fn"] = c.act_fn;
  j["normalization_type"] = c.has_ln() ? nlohmann::json("LN") : nlohmann::json(nullptr);
  j["positional_embedding_type"] = c.positional_embedding_type;
  j["eps"] = c.eps;
  j["initializer_range"] = c.init_range();
  j["init_mode"] = "gpt2";
  j["seed"] = c.seed;
  if (c.family == "gpt2") j["original_architecture"] = "GPT2LMHeadModel";
  j["circuitlab"] = {{"format", "circuitlab-model-v1"}, {"use_bias", c.use_bias}, {"family", "toy"}};
  return j;
}

namespace {

template <typename T>
T get_field(const nlohmann::json& j, const char* key, const std::string& where, const char* expected) {
  auto it = j.find(key);
  if (it == j.end()) fail(where + ": config field '" + key + "' is missing (expected " + expected + ")");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann narrows silently (and a float out of range is undefined behaviour): read
    // through int64/double and range-check. Integral floats (2.0) are accepted.
    const auto bad = [&] {
      fail(where + ": config field '" + key + "' is out of range or not an integer (expected " + expected + "), got " +
           it->dump());
    };
    long double v = 0;
    if (it->is_number_unsigned())
      v = static_cast<long double>(it->template get<uint64_t>());
    else if (it->is_number_integer())
      v = static_cast<long double>(it->template get<int64_t>());
    else if (it->is_number_float()) {
      const double d = it->template get<double>();
      if (!std::isfinite(d) || d != std::floor(d)) bad();
      v = d;
    } else {
      fail(where + ": config field '" + key + "' has the wrong type (expected " + expected + "), got " + it->dump());
    }
    if (v < static_cast<long double>(std::numeric_limits<T>::min()) ||
        v > static_cast<long double>(std::numeric_limits<T>::max()))
      bad();
    return static_cast<T>(v);
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(where + ": config field '" + key + "' has the wrong type (expected " + expected + "), got " + it->dump());
  }
}

template <typename T>
T get_opt(const nlohmann::json& j, const char* key, T fallback, const std::string& where, const char* expected) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return get_field<T>(j, key, where, expected);
}

ModelConfig gpt2_from_hf(const nlohmann::json& j, const std::string& where) {
  ModelConfig c;
  c.family = "gpt2";
  c.n_layers = get_field<int>(j, "n_layer", where, "an integer");
  c.d_model = get_field<int>(j, "n_embd", where, "an integer");
  c.n_heads = get_field<int>(j, "n_head", where, "an integer");
  if (c.n_heads <= 0 || c.d_model % c.n_heads != 0)
    fail(where + ": config field 'n_head' (" + std::to_string(c.n_heads) + ") must divide n_embd (" +
         std::to_string(c.d_model) + ")");
  c.d_head = c.d_model / c.n_heads;
  c.n_ctx = get_field<int>(j, "n_positions", where, "an integer");
  c.d_vocab = get_field<int>(j, "vocab_size", where, "an integer");
  c.d_vocab_out = c.d_vocab;
  c.d_mlp = get_opt<int>(j, "n_inner", 4 * c.d_model, where, "an integer or null");
  c.attn_only = false;
  c.normalization_type = "LN";
  c.positional_embedding_type = "standard";
  c.act_fn = get_opt<std::string>(j, "activation_function", "gelu_new", where, "a string");
  c.eps = get_opt<double>(j, "layer_norm_epsilon", 1e-5, where, "a number");
  c.initializer_range = get_opt<double>(j, "initializer_range", 0.02, where, "a number");
  c.use_bias = true;
  c.tied_unembed = true;
  if (c.act_fn != "gelu_new")
    fail(where + ": config field 'activation_function' must be \"gelu_new\" for GPT-2, got \"" + c.act_fn + "\"");
  return c;
}

}  // namespace

ModelConfig config_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where + ": expected a JSON object");
  if ((j.contains("model_type") && j["model_type"] == "gpt2") || j.contains("n_layer")) {
    ModelConfig c = gpt2_from_hf(j, where);
    c.validate(where);
    return c;
  }
  if (j.contains("model_type"))
    fail(where + ": config field 'model_type' is " + j["model_type"].dump() + ", expected \"gpt2\" or TransformerLens keys");
  ModelConfig c;
  c.n_layers = get_field<int>(j, "n_layers", where, "an integer");
  c.d_model = get_field<int>(j, "d_model", where, "an integer");
  c.d_head = get_field<int>(j, "d_head", where, "an integer");
  c.n_ctx = get_field<int>(j, "n_ctx", where, "an integer");
  c.d_vocab = get_field<int>(j, "d_vocab", where, "an integer");
  c.n_heads = get_opt<int>(j, "n_heads", -1, where, "an integer");
  if (c.n_heads == -1 && c.d_head > 0) c.n_heads = c.d_model / c.d_head;  // TL default
  c.d_vocab_out = get_opt<int>(j, "d_vocab_out", -1, where, "an integer");
  c.attn_only = get_opt<bool>(j, "attn_only", false, where, "true or false");
  c.d_mlp = get_opt<int>(j, "d_mlp", -1, where, "an integer or null");
  auto nt = j.find("normalization_type");
  if (nt == j.end()) c.normalization_type = "LN";  // TL default
  else if (nt->is_null()) c.normalization_type = "";
  else c.normalization_type = get_field<std::string>(j, "normalization_type", where, "\"LN\" or null");
  c.positional_embedding_type = get_opt<std::string>(j, "positional_embedding_type", "standard", where, "a string");
  c.act_fn = get_opt<std::string>(j, "act_fn", "gelu_new", where, "a string");
  c.eps = get_opt<double>(j, "eps", 1e-5, where, "a number");
  c.initializer_range = get_opt<double>(j, "initializer_range", -1.0, where, "a number");
  c.seed = get_opt<int>(j, "seed", 0, where, "an integer");
  if (auto ext = j.find("circuitlab"); ext != j.end() && ext->is_object()) {
    c.use_bias = get_opt<bool>(*ext, "use_bias", true, where + " [circuitlab]", "true or false");
  }
  c.family = "toy";
  c.tied_unembed = false;
  c.validate(where);
  return c;
}

}  // namespace circuitlab::models
