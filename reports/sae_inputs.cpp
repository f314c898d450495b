// Loading and schema checks of a run's SAE directory for the report (see sae_inputs.h; the
// features schema is analysis/SAE_FEATURES_JSON.md, eval.json is `circuitlab sae eval`'s).
#include "reports/sae_inputs.h"

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "reports/schema_node.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;
using schema::kNotNull;
using schema::kNullable;
using schema::Node;

// One example context (top or quantile): ids, strs and acts align, the peak lies inside.
void check_example(const Node& e) {
  e.require_all({"act", "peak", "strs", "acts"});
  e.number("act", kNotNull);
  e.integer("offset", kNullable);
  e.integer("peak");
  e.integer_array("ids", kNullable);
  e.strings("strs");
  e.number_array("acts", 1);
  const json& j = e.raw();
  if (!j["strs"].is_array()) e.invalid("strs", "has the wrong type (expected an array of strings)");
  const size_t n = j["strs"].size();
  if (j["acts"].size() != n)
    e.invalid("acts", "has " + std::to_string(j["acts"].size()) + " entries but strs has " + std::to_string(n));
  if (j.contains("ids") && j["ids"].is_array() && j["ids"].size() != n)
    e.invalid("ids", "has " + std::to_string(j["ids"].size()) + " entries but strs has " + std::to_string(n));
  const int64_t peak = j["peak"].get<int64_t>();
  if (peak < 0 || peak >= static_cast<int64_t>(n))
    e.invalid("peak", "must index the context (0.." + std::to_string(n) + "), got " + std::to_string(peak));
}

void check_latent(const Node& l, size_t i) {
  l.require_all({"index", "density", "fired", "max", "label", "top"});
  l.integer("index");
  if (l.raw()["index"].get<int64_t>() != static_cast<int64_t>(i))
    l.invalid("index", "must be " + std::to_string(i) + " (latents are listed in index order), got " + l.raw()["index"].dump());
  l.number("density", kNotNull);
  l.integer("fired");
  l.number("max", kNotNull);
  l.number("mean", kNullable);
  l.string("label");
  l.child("hist", [](const Node& h) {
    h.require_all({"first", "counts"});
    h.integer("first");
    h.integer_array("counts");
  });
  l.objects("top", check_example, kNotNull);
  l.objects("quantiles", [](const Node& q) {
    check_example(q);
    q.number("quantile");
  });
  for (const char* k : {"promoted", "suppressed"})
    l.objects(k, [](const Node& t) {
      t.require_all({"str", "value"});
      t.integer("id");
      t.string("str");
      t.number("value", kNotNull);
    });
  l.objects("neighbors", [](const Node& n) {
    n.require_all({"index", "cosine"});
    n.integer("index");
    n.number("cosine", kNotNull);
  });
}

}  // namespace

void check_sae_cfg_json(const json& cfg, const std::string& path) {
  Node top(cfg, path, "");
  top.require_all({"d_in", "d_sae"});
  top.string("architecture");
  top.integer("d_in");
  top.integer("d_sae");
  top.integer("k", kNullable);
  top.string("hook_name");
  top.integer("hook_head_index", kNullable);
  for (const char* meta : {"metadata", "meta"})
    top.child(meta, [](const Node& m) {
      m.string("hook_name");
      m.integer("hook_head_index", kNullable);
    });
}

void check_sae_eval_json(const json& eval, const std::string& path) {
  Node top(eval, path, "");
  // The numbers the report's table shows are required; the rest, when present, are numbers.
  top.require_all({"l0", "explained_variance", "ce_loss_score", "frac_dead", "tokens"});
  for (const char* k : {"l0", "explained_variance", "ce_loss_score", "frac_dead", "tokens"}) top.number(k, kNotNull);
  for (const char* k : {"ce_loss_clean", "ce_loss_with_sae", "ce_loss_with_ablation", "kl_div_score", "kl_div_with_sae",
                        "kl_div_with_ablation", "cosine_similarity", "frac_dense_1pct", "frac_dense_10pct", "l2_ratio", "mse"})
    top.number(k);
  top.string("hook_name", kNullable);
  top.string("sae", kNullable);
}

void check_sae_features_json(const json& f, const std::string& path) {
  Node top(f, path, "");
  top.require_all({"format", "sae", "data", "density_histogram", "latents"});
  top.string("format");
  if (f["format"] != "circuitlab-sae-features-v1")
    json_fields::field_error(path, "format", "must be \"circuitlab-sae-features-v1\", got " + f["format"].dump());
  top.child("sae", [](const Node& s) {
    s.require_all({"d_sae", "hook_name"});
    s.string("name", kNullable);
    s.string("architecture", kNullable);
    s.integer("d_in", kNullable);
    s.integer("d_sae");
    s.integer("k", kNullable);
    s.string("hook_name");
    s.integer("hook_head_index", kNullable);
  }, kNotNull);
  top.child("data", [](const Node& d) {
    d.require("tokens");
    d.integer("tokens");
    d.integer("windows", kNullable);
    d.integer("context", kNullable);
  }, kNotNull);
  top.string("logit_path", kNullable);
  top.child("histogram_bins", [](const Node& b) {
    b.require_all({"log10_lo", "width", "count"});
    b.number("log10_lo", kNotNull);
    b.number("width", kNotNull);
    b.integer("count");
  });
  top.child("density_histogram", [](const Node& h) {
    h.require_all({"log10_lo", "width", "counts", "dead"});
    h.number("log10_lo", kNotNull);
    h.number("width", kNotNull);
    h.integer_array("counts");
    h.integer("dead");
  }, kNotNull);
  top.child("summary", [](const Node& s) {
    for (const char* k : {"dead", "dense_1pct", "dense_10pct"}) s.integer(k, kNullable);
    s.number("mean_l0");
  });
  const json& latents = f["latents"];
  if (!latents.is_array()) json_fields::field_error(path, "latents", "has the wrong type (expected an array), got " + std::string(latents.type_name()));
  const int64_t d_sae = f["sae"]["d_sae"].get<int64_t>();
  if (static_cast<int64_t>(latents.size()) != d_sae)
    json_fields::field_error(path, "latents", "has " + std::to_string(latents.size()) + " entries but sae.d_sae is " + std::to_string(d_sae));
  for (size_t i = 0; i < latents.size(); ++i) check_latent(Node(latents[i], path, "latents[" + std::to_string(i) + "]."), i);
}

std::optional<SaeInputs> load_sae(const std::string& run_dir) {
  SaeInputs s;
  s.dir = run_dir + "/sae";
  s.eval_path = s.dir + "/eval.json";
  if (!is_directory(s.dir) || !file_exists(s.eval_path)) return std::nullopt;
  s.cfg_path = s.dir + "/cfg.json";
  if (!file_exists(s.cfg_path)) fail(s.cfg_path + ": missing (an SAE directory holds cfg.json beside eval.json)");
  s.cfg = json_fields::parse_file(s.cfg_path);
  check_sae_cfg_json(s.cfg, s.cfg_path);
  s.eval = json_fields::parse_file(s.eval_path);
  check_sae_eval_json(s.eval, s.eval_path);

  s.architecture = s.cfg.value("architecture", std::string("standard"));
  s.d_in = s.cfg["d_in"].get<int64_t>();
  s.d_sae = s.cfg["d_sae"].get<int64_t>();
  if (s.cfg.contains("k") && s.cfg["k"].is_number_integer()) s.k = s.cfg["k"].get<int64_t>();
  const json* meta = &s.cfg;
  for (const char* m : {"metadata", "meta"})
    if (s.cfg.contains(m) && s.cfg[m].is_object()) { meta = &s.cfg[m]; break; }
  s.hook_name = meta->value("hook_name", s.cfg.value("hook_name", std::string()));
  if (meta->contains("hook_head_index") && (*meta)["hook_head_index"].is_number_integer())
    s.hook_head_index = (*meta)["hook_head_index"].get<int64_t>();
  if (s.hook_name.empty() && s.eval.contains("hook_name") && s.eval["hook_name"].is_string())
    s.hook_name = s.eval["hook_name"].get<std::string>();

  const std::string fpath = s.dir + "/features.json";
  if (file_exists(fpath)) {
    s.features_path = fpath;
    s.features = json_fields::parse_file(fpath);
    check_sae_features_json(s.features, fpath);
    // A features.json left from another SAE in the same directory would label the wrong latents.
    const json& fs = s.features["sae"];
    if (fs["d_sae"].get<int64_t>() != s.d_sae)
      json_fields::field_error(fpath, "sae.d_sae", "is " + fs["d_sae"].dump() + " but " + s.cfg_path + " says d_sae " + std::to_string(s.d_sae) +
                                                       " (features.json is from another SAE; rerun `circuitlab sae features`)");
    if (!s.hook_name.empty() && fs["hook_name"].get<std::string>() != s.hook_name)
      json_fields::field_error(fpath, "sae.hook_name", "is " + fs["hook_name"].dump() + " but " + s.cfg_path + " says \"" + s.hook_name +
                                                           "\" (features.json is from another SAE; rerun `circuitlab sae features`)");
  }
  return s;
}

}  // namespace circuitlab::reports
