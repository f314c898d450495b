// SAE directories for the report tests: cfg.json (SAELens layout), eval.json (`circuitlab sae
// eval`'s keys) and features.json (analysis/SAE_FEATURES_JSON.md). A small hand-written one
// whose every value a test can name, and a demo-sized seeded one (2048 latents) for the page's
// size and the browser. Not an SAE: the report must only copy these numbers.
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace circuitlab::reports::testing {

using nlohmann::json;

inline json sae_cfg(int d_in, int d_sae, const std::string& hook) {
  json meta = {{"hook_name", hook}, {"hook_head_index", nullptr}, {"hook_layer", 1}, {"model_name", "model"}, {"context_size", 64}};
  return {{"architecture", "topk"}, {"d_in", d_in}, {"d_sae", d_sae}, {"k", 2}, {"dtype", "float32"}, {"device", "cpu"},
          {"apply_b_dec_to_input", true}, {"normalize_activations", "none"}, {"metadata", meta}, {"meta", meta}};
}

inline json sae_eval(const std::string& hook) {
  json e = json::parse(R"({"ce_loss_clean": 5.41727, "ce_loss_score": 0.91019, "ce_loss_with_ablation": 7.10849,
    "ce_loss_with_sae": 5.56917, "cosine_similarity": 0.85796, "explained_variance": 0.67128, "frac_dead": 0.25,
    "frac_dense_10pct": 0.0, "frac_dense_1pct": 0.5, "kl_div_score": 0.85893, "kl_div_with_ablation": 2.08442,
    "kl_div_with_sae": 0.29404, "l0": 1.875, "l2_ratio": 0.93083, "mse": 0.45004, "sae": "runs/x/sae", "tokens": 16384})");
  e["hook_name"] = hook;
  return e;
}

// Four latents: 0 a " cat" feature, 1 dead, 2 one that fires on markup ("</script>" must not
// end the page's data block), 3 a newline feature.
inline json small_features() {
  return json::parse(R"JSON({
  "format": "circuitlab-sae-features-v1", "created_utc": "2026-12-05T06:00:00Z", "elapsed_s": 1.5,
  "sae": {"dir": "runs/attn2l/sae", "name": "sae", "architecture": "topk", "d_in": 32, "d_sae": 4, "k": 2,
          "hook_name": "blocks.1.hook_resid_mid", "hook_head_index": null},
  "model": {"dir": "runs/attn2l/model", "d_vocab": 100, "compact_vocab": false},
  "data": {"dir": "data", "split": "val", "tokens": 2000, "windows": 40, "context": 50},
  "options": {"top": 3, "quantile_examples": [0.5], "reservoir": 16, "before": 3, "after": 1, "logit_tokens": 2,
              "neighbors": 1, "seed": 0},
  "logit_path": "W_dec·ln_final·W_U",
  "histogram_bins": {"log10_lo": -3.0, "width": 0.25, "count": 24},
  "density_histogram": {"log10_lo": -5.0, "width": 0.5, "counts": [0, 1, 0, 1, 1, 0, 0, 0, 0, 0], "dead": 1},
  "summary": {"dead": 1, "dense_1pct": 2, "dense_10pct": 0, "mean_l0": 1.875},
  "latents": [
    {"index": 0, "density": 0.0123456, "fired": 24, "max": 4.56789, "mean": 2.13579, "label": " cat / cats → meow",
     "hist": {"first": 10, "counts": [1, 3, 8, 5, 3]},
     "top": [
       {"act": 4.56789, "offset": 100, "peak": 3, "ids": [1, 2, 3, 4, 5], "strs": [" the", " big", " black", " cat", " sat"],
        "acts": [0.0, 0.0, 0.51234, 4.56789, 1.0]},
       {"act": 3.25, "offset": 900, "peak": 1, "ids": [6, 7, 8], "strs": [" two", " cats", "."], "acts": [0.0, 3.25, 0.0]}],
     "quantiles": [{"quantile": 0.5, "act": 1.5, "offset": 40, "peak": 1, "ids": [9, 4], "strs": [" a", " cat"], "acts": [0.0, 1.5]}],
     "promoted": [{"id": 11, "str": " meow", "value": 0.812345}, {"id": 12, "str": " purr", "value": 0.5}],
     "suppressed": [{"id": 13, "str": " bark", "value": -0.612345}, {"id": 14, "str": " woof", "value": -0.4}],
     "neighbors": [{"index": 2, "cosine": 0.412345}]},
    {"index": 1, "density": 0, "fired": 0, "max": 0, "mean": null, "label": "dead", "hist": {"first": 0, "counts": []},
     "top": [], "quantiles": [],
     "promoted": [{"id": 15, "str": " x", "value": 0.1}], "suppressed": [{"id": 16, "str": " y", "value": -0.1}],
     "neighbors": [{"index": 0, "cosine": 0.1}]},
    {"index": 2, "density": 0.5, "fired": 1000, "max": 2.0, "mean": 0.75, "label": "</script> / <b> → &",
     "hist": {"first": 0, "counts": [500, 500]},
     "top": [{"act": 2.0, "offset": 7, "peak": 1, "ids": [17, 18], "strs": ["<b>", "</script>"], "acts": [0.25, 2.0]}],
     "quantiles": [],
     "promoted": [{"id": 19, "str": "&", "value": 0.3}], "suppressed": [{"id": 20, "str": "<i>", "value": -0.3}],
     "neighbors": [{"index": 0, "cosine": 0.412345}]},
    {"index": 3, "density": 0.001, "fired": 2, "max": 1.0, "mean": 0.9, "label": "\n → The",
     "hist": {"first": 5, "counts": [2]},
     "top": [{"act": 1.0, "offset": 3, "peak": 0, "ids": [21], "strs": ["\n"], "acts": [1.0]}],
     "quantiles": [],
     "promoted": [{"id": 22, "str": "The", "value": 0.2}], "suppressed": [{"id": 23, "str": " the", "value": -0.2}],
     "neighbors": [{"index": 1, "cosine": 0.05}]}
  ]})JSON");
}

// A demo-sized features.json: `d_sae` latents, `top` examples of `before + 1 + after` tokens
// each, seeded. Every 16th latent is dead.
inline json demo_features(int d_sae, int top, int before, int after, uint32_t seed, const std::string& hook) {
  static const char* words[] = {" the", " of", " and", " to", " in", " a", " is", "\n", " that", " for", " it", " with", " as",
                                " was", " on", " keep", " mind", " bay", " at", "ing", " cat", " dog", " river", " said"};
  const int n_words = sizeof(words) / sizeof(words[0]);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  json f = small_features();
  f["sae"]["d_sae"] = d_sae;
  f["sae"]["hook_name"] = hook;
  f["options"]["top"] = top;
  f["options"]["before"] = before;
  f["options"]["after"] = after;
  f["data"]["tokens"] = 1000000;
  json latents = json::array(), dens = json::array();
  std::vector<int> density_counts(12, 0);
  int dead = 0;
  for (int i = 0; i < d_sae; ++i) {
    if (i % 16 == 15) {
      ++dead;
      latents.push_back({{"index", i}, {"density", 0}, {"fired", 0}, {"max", 0}, {"mean", nullptr}, {"label", "dead"},
                         {"hist", {{"first", 0}, {"counts", json::array()}}}, {"top", json::array()}, {"quantiles", json::array()},
                         {"promoted", json::array()}, {"suppressed", json::array()}, {"neighbors", json::array()}});
      continue;
    }
    const double log_d = -5.5 + 5.0 * u(rng), density = std::pow(10.0, log_d), mx = 1.0 + 9.0 * u(rng);
    density_counts[std::min(11, static_cast<int>((log_d + 6.0) / 0.5))]++;
    const int peak_word = i % n_words;
    json top_ex = json::array();
    for (int t = 0; t < top; ++t) {
      const double act = mx * (1.0 - 0.6 * t / std::max(1, top));
      json ids = json::array(), strs = json::array(), acts = json::array();
      for (int k = -before; k <= after; ++k) {
        const int w = k == 0 ? peak_word : static_cast<int>(u(rng) * n_words);
        ids.push_back(w);
        strs.push_back(words[w]);
        acts.push_back(k == 0 ? act : (u(rng) < 0.3 ? std::round(act * u(rng) * 1e4) / 1e4 : 0.0));
      }
      top_ex.push_back({{"act", act}, {"offset", 64 * (i + t)}, {"peak", before}, {"ids", ids}, {"strs", strs}, {"acts", acts}});
    }
    json hist = json::array();
    for (int b = 0; b < 12; ++b) hist.push_back(static_cast<int>(100 * u(rng)));
    latents.push_back({{"index", i}, {"density", density}, {"fired", static_cast<int>(density * 1e6)}, {"max", mx},
                       {"mean", mx / 3}, {"label", std::string(words[peak_word]) + " → " + words[(i + 3) % n_words]},
                       {"hist", {{"first", 4}, {"counts", hist}}}, {"top", top_ex},
                       {"quantiles", json::array({json{{"quantile", 0.5}, {"act", mx / 4}, {"offset", 3}, {"peak", 0},
                                                       {"ids", json::array({peak_word})}, {"strs", json::array({words[peak_word]})},
                                                       {"acts", json::array({mx / 4})}}})},
                       {"promoted", json::array({json{{"id", (i + 3) % n_words}, {"str", words[(i + 3) % n_words]}, {"value", 0.5 + u(rng)}}})},
                       {"suppressed", json::array({json{{"id", (i + 5) % n_words}, {"str", words[(i + 5) % n_words]}, {"value", -0.5 - u(rng)}}})},
                       {"neighbors", json::array({json{{"index", (i + 1) % d_sae}, {"cosine", 0.3 + 0.2 * u(rng)}}})}});
  }
  f["latents"] = latents;
  f["density_histogram"] = {{"log10_lo", -6.0}, {"width", 0.5}, {"counts", density_counts}, {"dead", dead}};
  f["summary"] = {{"dead", dead}, {"dense_1pct", 0}, {"dense_10pct", 0}, {"mean_l0", 32.0}};
  return f;
}

// Writes <run_dir>/sae/{cfg,eval,features}.json (features skipped when null).
inline void write_sae_dir(const std::string& run_dir, const json& cfg, const json& eval, const json& features) {
  make_dirs(run_dir + "/sae");
  write_file_atomic(run_dir + "/sae/cfg.json", cfg.dump(2));
  write_file_atomic(run_dir + "/sae/eval.json", eval.dump(2));
  if (!features.is_null()) write_file_atomic(run_dir + "/sae/features.json", features.dump());
}

}  // namespace circuitlab::reports::testing
