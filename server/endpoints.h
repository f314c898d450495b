// The lab's endpoints, one function each, grouped one file per family: inspect (run, ablate),
// patch, steer (steer, generate), features (SAE latents, pages, search, interventions); tokenize and models live with the registry (lab.cpp).
// Each takes its model and typed request and returns the JSON reply; BadRequest for client errors.
#pragma once
#include <nlohmann/json.hpp>

#include "server/lab_model.h"
#include "server/requests.h"

namespace circuitlab::server {

// endpoints_inspect.cpp
nlohmann::json run_endpoint(LabModel& m, const RunRequest& r, const LabLimits& lim);
nlohmann::json ablate_endpoint(LabModel& m, const AblateRequest& r);
// endpoints_patch.cpp
nlohmann::json patch_endpoint(LabModel& m, const PatchRequest& r, const LabLimits& lim);
// endpoints_steer.cpp
nlohmann::json steer_endpoint(LabModel& m, const SteerRequest& r);
nlohmann::json generate_endpoint(LabModel& m, const GenerateRequest& r);

// endpoints_features.cpp (the SAE's own model; the index is checked here, 400 naming the field)
nlohmann::json feature_tokens_endpoint(LabModel& m, const LabSae& s, const FeatureTokensRequest& r);
nlohmann::json feature_page_endpoint(LabModel& m, const LabSae& s, const FeaturePageRequest& r);
nlohmann::json feature_search_endpoint(LabModel& m, const LabSae& s, const FeatureSearchRequest& r);
// kind "steer" (/api/steer with "feature"), "clamp", "ablate": the steer response's shape.
nlohmann::json feature_intervention_endpoint(LabModel& m, const LabSae& s, const FeatureInterventionRequest& r);

}  // namespace circuitlab::server
