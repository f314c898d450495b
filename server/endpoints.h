// The lab's endpoints, one function each, grouped one file per family: inspect (run, ablate),
// patch, steer (steer, generate); tokenize and models live with the registry (lab.cpp).
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

}  // namespace circuitlab::server
