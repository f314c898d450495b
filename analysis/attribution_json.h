// The attribution file `circuitlab attribute` writes (schema: ATTRIBUTION_JSON.md): the one
// place its keys are spelled. Serialises a DlaResult; no computation beyond NaN -> null.
// Not a reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/dla.h"
#include "data/token_namer.h"

namespace circuitlab::analysis {

// tokens: the prompt's model ids as attributed; model_dir: as given on the command line.
nlohmann::json dla_json(const DlaResult& r, const std::vector<int64_t>& tokens, const data::TokenNamer& namer,
                        const std::string& model_dir);

}  // namespace circuitlab::analysis
