// The lab's requests as typed structs, each parsed and range-checked in one place from the JSON
// body (BadRequest naming the field on any mistake). Not the endpoints (endpoints.h) and not the
// tokenizer: texts stay strings here; endpoints encode them for the chosen model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "analysis/patching.h"
#include "analysis/steering.h"
#include "server/bad_request.h"

namespace circuitlab::models {
struct ModelConfig;
}

namespace circuitlab::server {

// "model": the name asked for; "" when absent (the lab's default model).
std::string requested_model(const nlohmann::json& req);

struct TokenizeRequest {
  std::string text;
  bool prepend_bos = true;
};
TokenizeRequest parse_tokenize(const nlohmann::json& req, const LabLimits& lim);

struct RunRequest {
  std::string text;
  bool prepend_bos = true;
  int top_k = 5;
  int lens_top_k = 3;
  bool attention = true;
  std::vector<analysis::HeadRef> ablate;  // none: the clean run
  std::string ablation_kind = "zero";     // "zero" | "mean"
};
RunRequest parse_run(const nlohmann::json& req, const models::ModelConfig& cfg, const LabLimits& lim);

struct AblateRequest {
  std::string text;
  bool prepend_bos = true;
  std::vector<analysis::HeadRef> heads;
  std::string kind = "zero";
  int top_k = 3;
};
AblateRequest parse_ablate(const nlohmann::json& req, const models::ModelConfig& cfg, const LabLimits& lim);

struct PatchRequest {
  std::string clean, corrupted;
  std::string answer_correct, answer_incorrect;  // one token each, e.g. " Mary"
  bool prepend_bos = true;
  std::string target_name = "resid_pre";
  analysis::PatchTarget target = analysis::PatchTarget::ResidPre;
};
PatchRequest parse_patch(const nlohmann::json& req, const LabLimits& lim);

struct GenerateRequest {
  std::string prompt;
  bool prepend_bos = true;
  analysis::SamplingParams sampling;
};
GenerateRequest parse_generate(const nlohmann::json& req, const LabLimits& lim);

// A latent of a loaded SAE: "feature": {"sae": NAME, "index": F}. The index is checked against
// the SAE by the endpoint (the parser does not know it).
struct FeatureRef {
  std::string sae;
  int64_t index = 0;
};

struct FeatureTokensRequest {  // /api/features/tokens
  std::string sae, text;
  bool prepend_bos = true;
  int k = 8;  // latents per token
};
FeatureTokensRequest parse_feature_tokens(const nlohmann::json& req, const LabLimits& lim);

struct FeaturePageRequest {  // /api/features/page
  FeatureRef feature;  // "sae", "index" at the top level
};
FeaturePageRequest parse_feature_page(const nlohmann::json& req);

struct FeatureSearchRequest {  // /api/features/search
  std::string sae, query;
  int limit = 20;
};
FeatureSearchRequest parse_feature_search(const nlohmann::json& req, const LabLimits& lim);

// /api/steer with "feature", /api/features/clamp, /api/features/ablate.
struct FeatureInterventionRequest {
  std::string kind;  // "steer" | "clamp" | "ablate"
  std::string prompt;
  bool prepend_bos = true;
  FeatureRef feature;
  double coefficient = 4.0;  // steer
  double value = 0.0;        // clamp (ablate: 0)
  int64_t position = -1;     // clamp / ablate: one prompt position only (-1: every position)
  analysis::SamplingParams sampling;
};
// kind "steer" rejects prompt_add / prompt_sub / layer beside "feature".
FeatureInterventionRequest parse_feature_intervention(const nlohmann::json& req, const std::string& kind,
                                                      const LabLimits& lim);
// Whether a steer request steers with a feature (has "feature") rather than with prompts.
bool has_feature(const nlohmann::json& req);

struct SteerRequest {
  std::string prompt, prompt_add, prompt_sub;  // prompt_sub may be empty
  bool prepend_bos = true;
  int layer = 1;  // 0..L (L: after the last block)
  double coefficient = 4.0;
  analysis::SamplingParams sampling;
};
SteerRequest parse_steer(const nlohmann::json& req, const models::ModelConfig& cfg, const LabLimits& lim);

}  // namespace circuitlab::server
