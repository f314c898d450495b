// The attribution file (see attribution_json.h and ATTRIBUTION_JSON.md).
#include "analysis/attribution_json.h"

#include "analysis/analysis_json.h"

namespace circuitlab::analysis {

using nlohmann::json;

namespace {
json component_json(const DlaComponent& k) {
  json j = {{"kind", to_string(k.kind)},
            {"name", k.name},
            {"layer", k.layer >= 0 ? json(k.layer) : json(nullptr)},
            {"head", k.head >= 0 ? json(k.head) : json(nullptr)},
            {"value", num(k.value)}};
  if (k.kind == DlaKind::Head && !k.by_source.empty()) {
    json by = json::array();
    for (double v : k.by_source) by.push_back(num(v));
    j["by_source"] = std::move(by);
  }
  return j;
}
}  // namespace

json dla_json(const DlaResult& r, const std::vector<int64_t>& tokens, const data::TokenNamer& namer,
              const std::string& model_dir) {
  json toks = json::array();
  for (int64_t id : tokens) toks.push_back(namer.json(id));
  json comps = json::array();
  for (const auto& k : r.components) comps.push_back(component_json(k));
  return {{"format", "circuitlab-dla-v1"},
          {"model_dir", model_dir},
          {"created_utc", now_utc()},
          {"tokens", std::move(toks)},
          {"position", r.position},
          {"target", namer.json(r.target)},
          {"against", r.against >= 0 ? namer.json(r.against) : json(nullptr)},
          {"total", num(r.logit)},
          {"sum", num(r.sum)},
          {"ln_final_scale", r.ln_scale > 0 ? num(r.ln_scale) : json(nullptr)},
          {"has_pos_embed", r.has_pos_embed},
          {"components", std::move(comps)}};
}

}  // namespace circuitlab::analysis
