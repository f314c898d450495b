// What the report reads from one run directory: analysis.json (which also carries the model's
// config and parameter count), train_config.json, metrics.jsonl, the snapshot (phase-change)
// analysis and the run's SAE directory (sae_inputs.h). Files only; nothing is recomputed here.
// Not a model loader: the model's own files (config.json, safetensors) are never opened.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/sae_inputs.h"

namespace circuitlab::reports {

struct ModelShape {
  int n_layers = 0, n_heads = 0, d_model = 0, d_head = 0, n_ctx = 0, d_vocab = 0;
  bool gpt2 = false;
  std::string normalization, positional;
};

struct RunInputs {
  std::string dir;               // as given on the command line
  std::string name;              // last path component (preset name: attn0l, attn1l, ...)
  bool is_gpt2 = false;          // given through --gpt2
  nlohmann::json train_config;   // null when the run has none (e.g. GPT-2)
  nlohmann::json model_config;   // analysis.json's "config" (TransformerLens keys + "family")
  ModelShape shape;
  int64_t n_params = -1;         // analysis.json's "n_params"; -1 when an older file lacks it
  std::vector<nlohmann::json> metrics;  // metrics.jsonl rows in file order
  nlohmann::json analysis;       // analysis.json (required)
  std::string analysis_path;
  nlohmann::json phase;          // snapshot analysis (phase change), null when absent
  std::string phase_path;
  std::optional<SaeInputs> sae;  // <dir>/sae with eval.json (and features.json when present)
};

// Loads a training run directory (runs/<name>/). Throws circuitlab::Error naming the file and
// field when analysis.json is missing or a file is malformed.
RunInputs load_run(const std::string& dir, bool is_gpt2 = false);

// Shape fields from analysis.json's "config" (TransformerLens keys; "family": "toy" | "gpt2").
ModelShape shape_from_config(const nlohmann::json& cfg, const std::string& where);

// Last metrics row with a non-null numeric `field`; nullptr when none.
const nlohmann::json* last_with(const std::vector<nlohmann::json>& rows, const std::string& field);

}  // namespace circuitlab::reports
