// /api/steer and /api/generate: ActAdd-steered generation beside the plain one, and plain
// seeded generation (analysis/interventions.h, analysis/steering.h).
#include <torch/torch.h>

#include "analysis/interventions.h"
#include "server/endpoints.h"
#include "server/views.h"

namespace circuitlab::server {

using nlohmann::json;

json steer_endpoint(LabModel& m, const SteerRequest& r) {
  const auto prompt = m.encode(r.prompt, r.prepend_bos);
  const auto add = m.encode(r.prompt_add, r.prepend_bos);
  const auto sub = m.encode(r.prompt_sub, r.prepend_bos);
  const auto& cfg = m.cfg();
  if (cfg.n_layers == 0) bad("model \"" + m.name + "\" has no layers to steer");
  const int64_t pad = m.namer->model_id(220);  // " ", the ActAdd paper's pad token
  analysis::SteeredGeneration g;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    g = analysis::actadd_generate(m.loaded.model, prompt.ids, add.ids, sub.ids, r.layer, r.coefficient, pad, r.sampling);
  }
  json norms = json::array();
  auto n = g.vector.norm(2, -1);
  for (int64_t i = 0; i < n.size(0); ++i) norms.push_back(r4(n[i].item<double>()));
  return {{"model", m.name},
          {"layer", r.layer},
          {"hook", analysis::actadd_hook_name(cfg, r.layer)},
          {"coefficient", r.coefficient},
          {"prompt", r.prompt},
          {"vector_norms", norms},
          {"seed", r.sampling.seed},
          {"unsteered", generation_json(m, g.unsteered)},
          {"steered", generation_json(m, g.steered)}};
}

json generate_endpoint(LabModel& m, const GenerateRequest& r) {
  const auto prompt = m.encode(r.prompt, r.prepend_bos);
  std::vector<int64_t> out;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    out = analysis::generate(m.loaded.model, prompt.ids, r.sampling);
  }
  return {{"model", m.name}, {"seed", r.sampling.seed}, {"text", m.decode(out)}, {"tokens", output_tokens(m, out)}};
}

}  // namespace circuitlab::server
