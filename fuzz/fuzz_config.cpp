// libFuzzer target: config.json parsing for both model families (TransformerLens keys and
// Hugging Face GPT-2 keys) and ModelConfig::validate. Bad JSON, wrong types, out-of-range
// sizes must be an Error naming the field; an accepted config must round-trip through to_json.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "models/config.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  nlohmann::json j = nlohmann::json::parse(bytes, bytes + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;  // models/ reads the file through the same call, see the catalogue test
  try {
    models::ModelConfig c = models::config_from_json(j, "config.json");
    c.validate("config.json");
    // What we would write back reads back to the same sizes.
    models::ModelConfig c2 = models::config_from_json(models::to_json(c), "config.json (written)");
    FUZZ_CHECK(c2.n_layers == c.n_layers && c2.d_model == c.d_model && c2.n_heads == c.n_heads &&
                   c2.d_head == c.d_head && c2.n_ctx == c.n_ctx && c2.d_vocab == c.d_vocab,
               "to_json/config_from_json round trip changed a size");
  } catch (const Error&) {
  }
  return 0;
}
