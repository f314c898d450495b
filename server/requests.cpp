// Request parsing for the lab (see requests.h): every field read, typed and range-checked here.
#include "server/requests.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "core/json_fields.h"
#include "models/config.h"

namespace circuitlab::server {

using nlohmann::json;

void bad(const std::string& msg, int status) { throw BadRequest(status, msg); }
void bad_field(const std::string& key, const std::string& problem, int status) {
  bad(json_fields::field_message("request", key, problem), status);
}

namespace {

constexpr const char* kWhere = "request";

const json& object(const json& req) {
  if (!req.is_object()) bad("request body: expected a JSON object");
  return req;
}

// The one strict field reader (core/json_fields), its Errors as 400s:
// "request: field 'top_k' is out of range or not an integer (expected an integer in [1, 50]), got 0".
template <class F>
auto strictly(F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const Error& e) {
    bad(e.what());
  }
}


const json& field(const json& req, const char* key) {
  auto it = object(req).find(key);
  if (it == req.end()) bad_field(key, "is missing");
  return *it;
}

// Present and not null: the optional fields' "use the default" test.
const json* given(const json& req, const char* key) {
  auto it = object(req).find(key);
  return it == req.end() || it->is_null() ? nullptr : &*it;
}

std::string get_string(const json& req, const char* key, int max_bytes, bool allow_empty = false) {
  auto s = strictly([&] { return json_fields::as<std::string>(field(req, key), kWhere, key); });
  if (s.size() > size_t(max_bytes))
    bad_field(key, "is longer than " + std::to_string(max_bytes) + " bytes", 413);
  if (s.empty() && !allow_empty) bad_field(key, "must not be empty");
  return s;
}

double get_number(const json& req, const char* key, double def, double lo, double hi) {
  const json* v = given(req, key);
  if (!v) return def;
  const double x = strictly([&] { return json_fields::as<double>(*v, kWhere, key); });
  if (!(x >= lo && x <= hi))
    bad_field(key, "is out of range (expected a number in [" + json(lo).dump() + ", " + json(hi).dump() + "]), got " +
                       v->dump());
  return x;
}

int get_int(const json& req, const char* key, int def, int lo, int hi) {
  const json* v = given(req, key);
  if (!v) return def;
  return static_cast<int>(strictly([&] { return json_fields::detail::to_int64(*v, kWhere, key, lo, hi, "an integer"); }));
}

bool get_bool(const json& req, const char* key, bool def) {
  const json* v = given(req, key);
  return v ? strictly([&] { return json_fields::as<bool>(*v, kWhere, key); }) : def;
}

// "zero" | "mean" from an optional string field `key` of `obj`; `name` is how errors call it.
std::string get_ablation_kind(const json& obj, const char* key, const std::string& name) {
  std::string kind = "zero";
  if (obj.contains(key)) {
    if (!obj[key].is_string()) bad("field \"" + name + "\": expected \"zero\" or \"mean\"");
    kind = obj[key].get<std::string>();
  }
  if (kind != "zero" && kind != "mean") bad("field \"" + name + "\": expected \"zero\" or \"mean\", got \"" + kind + "\"");
  return kind;
}

std::vector<analysis::HeadRef> parse_heads(const json& v, const models::ModelConfig& cfg, const char* key) {
  if (!v.is_array()) bad(std::string("field \"") + key + "\": expected an array of {\"layer\", \"head\"} or [layer, head]");
  std::vector<analysis::HeadRef> heads;
  for (const auto& e : v) {
    analysis::HeadRef h;
    if (e.is_array() && e.size() == 2 && e[0].is_number_integer() && e[1].is_number_integer()) {
      h.layer = e[0].get<int>();
      h.head = e[1].get<int>();
    } else if (e.is_object() && e.contains("layer") && e.contains("head") && e["layer"].is_number_integer() &&
               e["head"].is_number_integer()) {
      h.layer = e["layer"].get<int>();
      h.head = e["head"].get<int>();
    } else {
      bad(std::string("field \"") + key + "\": each head must be {\"layer\": int, \"head\": int} or [layer, head], got " +
          e.dump());
    }
    if (h.layer < 0 || h.layer >= cfg.n_layers)
      bad("unknown layer " + std::to_string(h.layer) + " in \"" + key + "\" (model has " +
          std::to_string(cfg.n_layers) + " layers)");
    if (h.head < 0 || h.head >= cfg.n_heads)
      bad("unknown head " + std::to_string(h.head) + " in \"" + key + "\" (model has " + std::to_string(cfg.n_heads) +
          " heads per layer)");
    if (std::find(heads.begin(), heads.end(), h) == heads.end()) heads.push_back(h);
  }
  return heads;
}

analysis::SamplingParams parse_sampling(const json& req, const LabLimits& lim) {
  analysis::SamplingParams p;
  p.max_new_tokens = get_int(req, "max_new_tokens", 20, 1, lim.max_new_tokens);
  p.temperature = get_number(req, "temperature", 1.0, 0.0, 100.0);
  p.top_k = get_int(req, "top_k", 0, 0, 1 << 20);
  p.top_p = get_number(req, "top_p", 1.0, 1e-6, 1.0);
  p.seed = static_cast<uint64_t>(get_number(req, "seed", 0, 0, 9007199254740991.0));
  return p;
}

}  // namespace

std::string requested_model(const json& req) {
  auto it = object(req).find("model");
  if (it == req.end() || it->is_null()) return "";
  if (!it->is_string()) bad("field \"model\": expected a model name string");
  return it->get<std::string>();
}

TokenizeRequest parse_tokenize(const json& req, const LabLimits& lim) {
  TokenizeRequest r;
  r.text = get_string(req, "text", lim.max_text_bytes, /*allow_empty=*/true);
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  return r;
}

RunRequest parse_run(const json& req, const models::ModelConfig& cfg, const LabLimits& lim) {
  RunRequest r;
  r.text = get_string(req, "text", lim.max_text_bytes);
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.top_k = get_int(req, "top_k", 5, 1, lim.max_top_k);
  r.lens_top_k = get_int(req, "lens_top_k", 3, 1, lim.max_top_k);
  r.attention = get_bool(req, "attention", true);
  if (req.contains("ablate") && !req["ablate"].is_null()) {
    const json& a = req["ablate"];
    if (a.is_array()) {
      r.ablate = parse_heads(a, cfg, "ablate");
    } else if (a.is_object()) {
      r.ablate = parse_heads(field(a, "heads"), cfg, "ablate.heads");
      r.ablation_kind = get_ablation_kind(a, "kind", "ablate.kind");
    } else {
      bad("field \"ablate\": expected {\"heads\": [...], \"kind\": \"zero\"|\"mean\"} or a list of heads");
    }
  }
  return r;
}

AblateRequest parse_ablate(const json& req, const models::ModelConfig& cfg, const LabLimits& lim) {
  AblateRequest r;
  r.text = get_string(req, "text", lim.max_text_bytes);
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.heads = parse_heads(field(req, "heads"), cfg, "heads");
  r.kind = get_ablation_kind(req, "kind", "kind");
  r.top_k = get_int(req, "top_k", 3, 1, lim.max_top_k);
  return r;
}

PatchRequest parse_patch(const json& req, const LabLimits& lim) {
  PatchRequest r;
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.clean = get_string(req, "clean", lim.max_text_bytes);
  r.corrupted = get_string(req, "corrupted", lim.max_text_bytes);
  r.answer_correct = get_string(req, "answer_correct", 200);
  r.answer_incorrect = get_string(req, "answer_incorrect", 200);
  if (req.contains("target")) {
    if (!req["target"].is_string()) bad("field \"target\": expected a string");
    r.target_name = req["target"].get<std::string>();
  }
  try {
    r.target = analysis::patch_target_from_string(r.target_name);
  } catch (const Error& e) {
    bad(std::string("field \"target\": ") + e.what());
  }
  return r;
}

GenerateRequest parse_generate(const json& req, const LabLimits& lim) {
  GenerateRequest r;
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.prompt = get_string(req, "prompt", lim.max_text_bytes);
  r.sampling = parse_sampling(req, lim);
  return r;
}

namespace {
// The "sae" field of `obj` (reported as `key`): a non-empty name.
std::string parse_sae_name(const json& obj, const std::string& key) {
  auto s = obj.find("sae");
  if (s == obj.end() || s->is_null()) bad_field(key, "is missing (expected the name of a loaded SAE, see /api/models)");
  auto name = strictly([&] { return json_fields::as<std::string>(*s, kWhere, key); });
  if (name.empty()) bad_field(key, "must not be empty");
  return name;
}

// {"sae": NAME, "index": F} in `obj`; errors name `prefix` + the key ("feature.index").
FeatureRef parse_feature_ref(const json& obj, const std::string& prefix) {
  FeatureRef f;
  f.sae = parse_sae_name(obj, prefix + "sae");
  const std::string ik = prefix + "index";
  auto i = obj.find("index");
  if (i == obj.end() || i->is_null()) bad_field(ik, "is missing (expected a latent index)");
  f.index = strictly([&] { return json_fields::detail::to_int64(*i, kWhere, ik, 0, INT64_MAX, "a non-negative integer"); });
  return f;
}
}  // namespace

bool has_feature(const json& req) { return given(req, "feature") != nullptr; }

FeatureTokensRequest parse_feature_tokens(const json& req, const LabLimits& lim) {
  FeatureTokensRequest r;
  r.sae = parse_sae_name(object(req), "sae");
  r.text = get_string(req, "text", lim.max_text_bytes);
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.k = get_int(req, "k", 8, 1, lim.max_top_k);
  return r;
}

FeaturePageRequest parse_feature_page(const json& req) {
  FeaturePageRequest r;
  r.feature = parse_feature_ref(object(req), "");
  return r;
}

FeatureSearchRequest parse_feature_search(const json& req, const LabLimits& lim) {
  FeatureSearchRequest r;
  r.sae = parse_sae_name(object(req), "sae");
  r.query = get_string(req, "query", 200);
  if (r.query.find_first_not_of(" \t\r\n") == std::string::npos) bad_field("query", "must not be blank");
  r.limit = get_int(req, "limit", 20, 1, lim.max_search_results);
  return r;
}

FeatureInterventionRequest parse_feature_intervention(const json& req, const std::string& kind, const LabLimits& lim) {
  FeatureInterventionRequest r;
  r.kind = kind;
  const json* f = given(req, "feature");
  if (!f) bad_field("feature", "is missing (expected {\"sae\": NAME, \"index\": F})");
  if (!f->is_object()) bad_field("feature", "must be an object {\"sae\": NAME, \"index\": F}, got " + f->dump());
  r.feature = parse_feature_ref(*f, "feature.");
  if (kind == "steer")
    for (const char* k : {"prompt_add", "prompt_sub", "layer"})
      if (given(req, k)) bad_field(k, "cannot be given together with \"feature\" (steer with prompts or with a feature)");
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.prompt = get_string(req, "prompt", lim.max_text_bytes);
  if (kind == "steer") r.coefficient = get_number(req, "coefficient", 4.0, -1000.0, 1000.0);
  if (kind == "clamp") {
    field(req, "value");
    r.value = get_number(req, "value", 0.0, -1e6, 1e6);
  }
  if (kind != "steer") r.position = get_int(req, "position", -1, -1, 1 << 20);
  r.sampling = parse_sampling(req, lim);
  return r;
}

SteerRequest parse_steer(const json& req, const models::ModelConfig& cfg, const LabLimits& lim) {
  SteerRequest r;
  r.prepend_bos = get_bool(req, "prepend_bos", true);
  r.prompt = get_string(req, "prompt", lim.max_text_bytes);
  r.prompt_add = get_string(req, "prompt_add", lim.max_text_bytes);
  r.prompt_sub = get_string(req, "prompt_sub", lim.max_text_bytes, /*allow_empty=*/true);
  const int L = std::max(cfg.n_layers, 0);
  r.layer = get_int(req, "layer", std::max(0, std::min(1, L - 1)), 0, L);
  r.coefficient = get_number(req, "coefficient", 4.0, -1000.0, 1000.0);
  r.sampling = parse_sampling(req, lim);
  return r;
}

}  // namespace circuitlab::server
