// libFuzzer target: model-dir loading (config.json -> ModelConfig -> HookedTransformer, then
// tensors from model.safetensors checked by name and shape). The input is config.json; the
// safetensors file is a fixed, valid 1-layer toy written once at start-up, so the fuzzer
// explores configs that lie about it (sizes, family, flags). Error or a loaded model, nothing else.
#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "fuzz/fuzz_util.h"
#include "models/model_dir.h"

using namespace circuitlab;

namespace {
std::string g_dir;
// A config whose tensors would exceed this is skipped: the loader builds the model from the
// config before it reads tensors, so a config may legitimately ask for gigabytes (listed in
// the hardening report) and that is not what this target looks for.
constexpr double kMaxParams = 4e6;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  models::ModelConfig c;
  c.n_layers = 1; c.d_model = 8; c.n_heads = 2; c.d_head = 4; c.n_ctx = 8; c.d_vocab = 20;
  models::HookedTransformer m(c);
  g_dir = fuzz::scratch_dir() + "/model";
  models::save_model_dir(m, g_dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  // Bound the model size the config asks for (see kMaxParams) before handing it over.
  nlohmann::json j = nlohmann::json::parse(bytes, bytes + size, nullptr, false);
  if (j.is_object()) {
    double big = 1;
    for (const char* k : {"d_model", "n_embd", "d_vocab", "vocab_size", "n_ctx", "n_positions", "d_mlp", "n_inner"}) {
      auto it = j.find(k);
      if (it != j.end() && it->is_number()) big = std::max(big, std::abs(it->get<double>()));
    }
    double heads = 1, layers = 1;
    for (const char* k : {"n_heads", "n_head", "d_head"})
      if (j.contains(k) && j[k].is_number()) heads *= std::max(1.0, std::abs(j[k].get<double>()));
    for (const char* k : {"n_layers", "n_layer"})
      if (j.contains(k) && j[k].is_number()) layers = std::max(1.0, std::abs(j[k].get<double>()));
    if (big * big * heads * layers > kMaxParams * 64 || big > kMaxParams || layers > 64) return 0;
  }
  std::string cfg = g_dir + "/config.json";
  FILE* f = std::fopen(cfg.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(bytes, 1, size, f);
  std::fclose(f);
  try {
    models::LoadedModel lm = models::load_model_dir(g_dir);
    FUZZ_CHECK(lm.model, "load_model_dir returned no model");
  } catch (const Error&) {
  }
  return 0;
}
