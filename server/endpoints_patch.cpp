// /api/patch: activation patching (analysis/patching.h) over a clean / corrupted prompt pair.
#include <torch/torch.h>

#include "analysis/patching.h"
#include "server/endpoints.h"
#include "server/views.h"

namespace circuitlab::server {

using nlohmann::json;

namespace {
torch::Tensor to_tensor(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }  // [1,T]

// Row and column labels of the patching grid (see PatchTarget for the shapes).
std::pair<json, json> grid_labels(const LabModel& m, analysis::PatchTarget target, const EncodedText& clean) {
  const auto& cfg = m.cfg();
  json rows = json::array(), cols = json::array();
  for (int l = 0; l < cfg.n_layers; ++l) {
    if (target == analysis::PatchTarget::HeadPos)
      for (int h = 0; h < cfg.n_heads; ++h) rows.push_back("L" + std::to_string(l) + "H" + std::to_string(h));
    else
      rows.push_back("L" + std::to_string(l));
  }
  if (target == analysis::PatchTarget::Head)
    for (int h = 0; h < cfg.n_heads; ++h) cols.push_back("H" + std::to_string(h));
  else
    for (size_t t = 0; t < clean.ids.size(); ++t) cols.push_back(std::to_string(t) + ":" + input_str(m, clean, t));
  return {rows, cols};
}
}  // namespace

json patch_endpoint(LabModel& m, const PatchRequest& r, const LabLimits& lim) {
  const auto clean = m.encode(r.clean, r.prepend_bos), corrupt = m.encode(r.corrupted, r.prepend_bos);
  if (clean.ids.size() != corrupt.ids.size())
    bad("clean and corrupted prompts must have the same number of tokens (clean " + std::to_string(clean.ids.size()) +
        ", corrupted " + std::to_string(corrupt.ids.size()) + ")");
  if (clean.ids.size() > size_t(lim.max_patch_tokens))
    bad("patching prompts are limited to " + std::to_string(lim.max_patch_tokens) + " tokens", 413);
  const int64_t correct = m.answer_token(r.answer_correct, "answer_correct");
  const int64_t incorrect = m.answer_token(r.answer_incorrect, "answer_incorrect");
  const auto& cfg = m.cfg();
  if (cfg.n_layers == 0) bad("model \"" + m.name + "\" has no layers to patch");
  const int64_t T = static_cast<int64_t>(clean.ids.size());
  const int64_t cells = r.target == analysis::PatchTarget::Head       ? int64_t(cfg.n_layers) * cfg.n_heads
                        : r.target == analysis::PatchTarget::HeadPos ? int64_t(cfg.n_layers) * cfg.n_heads * T
                                                                       : int64_t(cfg.n_layers) * T;
  if (cells > lim.max_patch_cells)
    bad("this patching run needs " + std::to_string(cells) + " patched passes, more than the limit of " +
            std::to_string(lim.max_patch_cells) + "; use a shorter prompt or another target",
        413);
  analysis::PatchResult res;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    res = analysis::activation_patching(m.loaded.model, to_tensor(clean.ids), to_tensor(corrupt.ids), correct, incorrect,
                                        r.target);
  }
  auto [rows, cols] = grid_labels(m, r.target, clean);
  return {{"model", m.name},
          {"target", r.target_name},
          {"clean_tokens", input_tokens(m, clean)},
          {"corrupted_tokens", input_tokens(m, corrupt)},
          {"answer_correct", output_token(m, correct)},
          {"answer_incorrect", output_token(m, incorrect)},
          {"clean_logit_diff", r4(res.clean_logit_diff)},
          {"corrupted_logit_diff", r4(res.corrupt_logit_diff)},
          {"rows", rows},
          {"cols", cols},
          {"recovery", matrix_json(res.recovery)},
          {"patched_logit_diff", matrix_json(res.patched_logit_diff)}};
}

}  // namespace circuitlab::server
