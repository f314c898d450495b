// /api/run and /api/ablate: one inspected forward pass, and a clean-vs-ablated comparison.
#include <torch/torch.h>

#include "analysis/interventions.h"
#include "analysis/logit_lens.h"
#include "server/endpoints.h"
#include "server/views.h"

namespace circuitlab::server {

using nlohmann::json;

namespace {
torch::Tensor to_tensor(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }  // [1,T]

json heads_json(const std::vector<analysis::HeadRef>& heads) {
  json hs = json::array();
  for (const auto& h : heads) hs.push_back({h.layer, h.head});
  return hs;
}
}  // namespace

json run_endpoint(LabModel& m, const RunRequest& r, const LabLimits& lim) {
  const auto e = m.encode(r.text, r.prepend_bos);
  const auto& cfg = m.cfg();
  const int64_t T = static_cast<int64_t>(e.ids.size());
  if (r.attention && int64_t(cfg.n_layers) * cfg.n_heads * T * T > lim.max_attention_values)
    bad("attention for " + std::to_string(T) + " tokens is too large to return; send \"attention\": false or a shorter prompt",
        413);
  analysis::InspectedRun run;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    run = analysis::inspect(m.loaded.model, to_tensor(e.ids), r.ablate,
                            analysis::ablation_kind_from_string(r.ablation_kind), r.attention, r.lens_top_k);
  }
  json out;
  out["model"] = m.name;
  out["tokens"] = input_tokens(m, e);
  out["predictions"] = top_predictions(m, run.logits, r.top_k);
  json nxt = json::array();  // probability of the token that actually comes next (null at the end)
  for (int64_t t = 0; t < T; ++t) nxt.push_back(t + 1 < T ? json(r4(run.next_token_prob[t].item<float>())) : json(nullptr));
  out["next_token_prob"] = std::move(nxt);
  out["loss"] = T >= 2 ? json(r4(run.loss)) : json(nullptr);
  out["ablated"] = heads_json(r.ablate);
  out["ablation_kind"] = r.ablation_kind;
  if (r.attention) out["attention"] = attention_json(run.patterns);  // [L][H][T_query][0..query]
  out["stage_labels"] = analysis::residual_stage_labels(cfg);
  out["resid_norms"] = matrix_json(run.stages.to(torch::kFloat).norm(2, /*dim=*/-1));  // [L+1,T]
  json lens = json::array();
  for (int64_t s = 0; s < run.lens_ids.size(0); ++s) lens.push_back(top_k_json(m, run.lens_ids[s], run.lens_probs[s]));
  out["logit_lens"] = std::move(lens);  // [L+1][T][k]
  return out;
}

json ablate_endpoint(LabModel& m, const AblateRequest& r) {
  const auto e = m.encode(r.text, r.prepend_bos);
  if (e.ids.size() < 2) bad("field \"text\": need at least 2 tokens to measure a loss");
  analysis::AblationComparison c;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    c = analysis::compare_ablation(m.loaded.model, to_tensor(e.ids), r.heads, analysis::ablation_kind_from_string(r.kind));
  }
  const auto pc = top_predictions(m, c.clean_logits, r.top_k), pa = top_predictions(m, c.ablated_logits, r.top_k);
  json positions = json::array();
  int changed = 0;
  for (size_t t = 0; t < e.ids.size(); ++t) {
    const bool ch = pc[t][0]["id"] != pa[t][0]["id"];
    changed += ch;
    json p = {{"pos", t},          {"token", input_str(m, e, t)}, {"clean_top", pc[t]},
              {"ablated_top", pa[t]}, {"top1_changed", ch},        {"kl", r4(c.kl[t].item<double>())}};
    if (t + 1 < e.ids.size()) {
      p["clean_loss"] = r4(c.clean_losses[t].item<double>());
      p["ablated_loss"] = r4(c.ablated_losses[t].item<double>());
    }
    positions.push_back(std::move(p));
  }
  const double lc = c.clean_losses.mean().item<double>(), la = c.ablated_losses.mean().item<double>();
  return {{"model", m.name},   {"tokens", input_tokens(m, e)}, {"heads", heads_json(r.heads)},
          {"kind", r.kind},    {"clean_loss", r4(lc)},          {"ablated_loss", r4(la)},
          {"loss_delta", r4(la - lc)}, {"n_top1_changed", changed}, {"positions", positions}};
}

}  // namespace circuitlab::server
