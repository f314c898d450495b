// What the report reads of a run's sparse autoencoder (<run>/sae/, SAELens layout): cfg.json
// (architecture, sizes, hook), eval.json (`circuitlab sae eval`) and, when present,
// features.json (analysis/SAE_FEATURES_JSON.md), each schema-checked at load so a bad field
// fails with one line naming the file and the field. Files only: the SAE's weights are never
// opened and no statistic is recomputed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace circuitlab::reports {

struct SaeInputs {
  std::string dir;                               // <run>/sae
  std::string cfg_path, eval_path, features_path;  // features_path empty when absent
  nlohmann::json cfg, eval;                      // both required
  nlohmann::json features;                       // null when features.json is absent
  // From cfg.json (SAELens ≥ 6 nests the hook under "metadata"/"meta"; older at the top).
  std::string architecture, hook_name;
  int64_t d_in = 0, d_sae = 0;
  int64_t k = -1;                                // -1: not a TopK-family SAE
  int64_t hook_head_index = -1;                  // -1: none
};

// <run_dir>/sae when it holds eval.json (else nullopt: the run renders without an SAE section).
// Throws circuitlab::Error naming the file and field on a missing cfg.json, a bad field, or a
// features.json that describes another SAE (d_sae or hook differ from cfg.json).
std::optional<SaeInputs> load_sae(const std::string& run_dir);

// Schema checks (exposed for tests). `path` names the file in messages.
void check_sae_cfg_json(const nlohmann::json& cfg, const std::string& path);
void check_sae_eval_json(const nlohmann::json& eval, const std::string& path);
// format circuitlab-sae-features-v1: types of every field the report reads, and the
// documented invariants it relies on (latents in index order, one activation per context
// token, the peak inside the context).
void check_sae_features_json(const nlohmann::json& f, const std::string& path);

}  // namespace circuitlab::reports
