// Small file and argument helpers shared by the subcommands: float32 .npy output and
// "--tokens" id lists. Not a general serialisation layer (models/safetensors.h is).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace circuitlab::apps {

// float32 C-order .npy (format 1.0), written atomically.
void write_npy_f32(const std::string& path, const at::Tensor& t);
// "464 3290 318" (or comma-separated) -> ids; Error naming --tokens on anything else.
std::vector<int64_t> parse_token_ids(const std::string& s);

}  // namespace circuitlab::apps
