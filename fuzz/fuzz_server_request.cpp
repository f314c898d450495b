// libFuzzer target: the lab's request handling (server/lab.h Lab::handle), i.e. everything a
// POST /api/<endpoint> body reaches after the HTTP layer's json::parse. Input: first byte picks
// the endpoint, the rest is the body. Outcomes allowed: a JSON reply or BadRequest (4xx).
// Any other exception would be a 500 for a client mistake: printed once per distinct message
// (set CIRCUITLAB_FUZZ_STRICT=1 to abort on it instead). Not the socket layer (cpp-httplib).
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "models/model_dir.h"
#include "server/lab.h"

using namespace circuitlab;

namespace {
server::Lab* g_lab = nullptr;
std::set<std::string> g_seen;
bool g_strict = false;
const char* kEndpoints[] = {"tokenize", "run", "ablate", "patch", "steer", "generate", "models", "nope"};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  g_strict = std::getenv("CIRCUITLAB_FUZZ_STRICT") != nullptr;
  // A 2-layer toy over GPT-2 ids, small enough that a forward pass costs microseconds.
  models::ModelConfig c;
  c.n_layers = 2; c.d_model = 16; c.n_heads = 2; c.d_head = 8; c.n_ctx = 32; c.d_vocab = 50257;
  models::HookedTransformer m(c);
  const std::string dir = fuzz::scratch_dir() + "/runs/toy/model";
  models::save_model_dir(m, dir);
  server::LabLimits lim;
  lim.max_text_bytes = 400;
  lim.max_new_tokens = 8;
  lim.max_patch_tokens = 16;
  lim.max_patch_cells = 200;
  g_lab = new server::Lab("", lim);
  g_lab->add_model(dir, "toy");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const std::string endpoint = kEndpoints[bytes[0] % 8];
  // Same parse as server/http_server.cpp (allow_exceptions=false, discarded -> 400 there).
  nlohmann::json body = nlohmann::json::parse(bytes + 1, bytes + size, nullptr, false);
  if (body.is_discarded()) return 0;
  try {
    nlohmann::json reply = g_lab->handle(endpoint, body);
    // The HTTP layer serialises the reply the same way (invalid UTF-8 replaced).
    (void)reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const server::BadRequest& e) {
    FUZZ_CHECK(e.status() >= 400 && e.status() < 500, "BadRequest with status %d", e.status());
  } catch (const std::exception& e) {
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    if (g_strict) FUZZ_CHECK(false, "500 for /api/%s: %s", endpoint.c_str(), msg.c_str());
    if (g_seen.insert(endpoint + ": " + msg.substr(0, 120)).second)
      std::fprintf(stderr, "SERVER-500 /api/%s %s -> %s\n", endpoint.c_str(), body.dump().substr(0, 200).c_str(),
                   msg.c_str());
  }
  return 0;
}
