// One sparse autoencoder as the lab holds it: its name, dir and weights (models/sae.h), the model
// it serves, and, when its dir has one, its features.json (analysis/SAE_FEATURES_JSON.md) with
// the lowercased texts feature search reads. Not an endpoint (endpoints_features.cpp) and not
// the dashboards' writer (analysis/sae_features.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/sae.h"

namespace circuitlab::server {

// features.json, checked against its SAE at load, and per latent the texts search matches.
struct SaeFeatures {
  std::string path;
  nlohmann::json doc;  // the whole file (format circuitlab-sae-features-v1)
  struct SearchText {
    std::string label;               // lowercased
    std::vector<std::string> peaks;  // lowercased peak token of each top example
    std::string context;             // lowercased tokens of the top examples, '\n'-separated
    std::vector<std::string> promoted;  // lowercased promoted tokens, strongest first
  };
  std::vector<SearchText> search;  // [d_sae]
  const nlohmann::json& latent(int64_t i) const { return doc["latents"][static_cast<size_t>(i)]; }
};

// Reads and checks features.json for `sae` (format, d_sae, hook, one latent entry per index with
// the fields the lab reads). Error naming the file and the field otherwise.
SaeFeatures load_sae_features(const std::string& path, const models::SaeConfig& sae);

struct LabSae {
  std::string name;   // the dir's basename, "<model>/<basename>" on a name collision
  std::string dir;
  std::string model;  // the LabModel it serves
  models::SparseAutoencoder sae;
  std::optional<SaeFeatures> features;  // <dir>/features.json when present

  // The label features.json gives latent i; "" without features.json.
  std::string label(int64_t i) const;
};

// Loads an SAE dir and, when present, its features.json (Error naming the file otherwise).
std::unique_ptr<LabSae> load_lab_sae(const std::string& dir);

// Feature search: latents whose label, top examples' tokens or promoted tokens contain `query`
// (ASCII case-insensitive, surrounding whitespace ignored), best first (see lab_sae.cpp for the
// score), at most `limit`. Dead latents are never returned.
struct FeatureHit {
  int64_t index = 0;
  double score = 0;
  std::vector<std::string> matched;  // "label", "top examples", "promoted"
};
std::vector<FeatureHit> search_features(const SaeFeatures& f, const std::string& query, int limit);

}  // namespace circuitlab::server
