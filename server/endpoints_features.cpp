// The Features panel's endpoints: per-token SAE latents of a prompt, a latent's feature page and
// feature search (from features.json, never recomputed), and steer / clamp / ablate with a latent
// beside the unchanged generation (analysis/sae_interventions.h).
#include <torch/torch.h>

#include <algorithm>

#include "analysis/interventions.h"
#include "analysis/sae_interventions.h"
#include "server/endpoints.h"
#include "server/views.h"

namespace circuitlab::server {

using nlohmann::json;

namespace {
torch::Tensor to_tensor(const std::vector<int64_t>& ids) { return torch::tensor(ids, torch::kLong).unsqueeze(0); }  // [1,T]

void check_index(const LabSae& s, int64_t index, const std::string& key) {
  if (index >= s.sae.cfg.d_sae)
    bad_field(key, "is out of range (SAE \"" + s.name + "\" has " + std::to_string(s.sae.cfg.d_sae) +
                       " latents, 0.." + std::to_string(s.sae.cfg.d_sae - 1) + "), got " + std::to_string(index));
}

// Pages and search read features.json: without it, a 404 saying how to write it.
const SaeFeatures& require_features(const LabSae& s) {
  if (!s.features)
    bad("SAE \"" + s.name + "\" has no features.json in " + s.dir +
            ": write it with `circuitlab sae features --sae " + s.dir + " --model MODEL_DIR --data SHARDS_DIR --out " +
            s.dir + "/features.json` (per-token latents and steer/clamp/ablate work without it)",
        404);
  return *s.features;
}

json sae_header(const LabModel& m, const LabSae& s) {
  return {{"model", m.name},
          {"sae", s.name},
          {"hook", s.sae.cfg.hook_name},
          {"d_sae", s.sae.cfg.d_sae},
          {"has_features", s.features.has_value()}};
}

json feature_ref_json(const LabSae& s, int64_t index) {
  json f = {{"sae", s.name}, {"index", index}};
  if (s.features) f["label"] = s.label(index);
  return f;
}

json tensor_list(const torch::Tensor& v) {  // [N] -> rounded numbers
  auto a = v.to(torch::kDouble).contiguous();
  json out = json::array();
  for (int64_t i = 0; i < a.size(0); ++i) out.push_back(num_or_null(a[i].item<double>()));
  return out;
}
}  // namespace

json feature_tokens_endpoint(LabModel& m, const LabSae& s, const FeatureTokensRequest& r) {
  const auto e = m.encode(r.text, r.prepend_bos);
  torch::Tensor f;  // [T, S]
  {
    std::lock_guard<std::mutex> lk(m.mu);
    f = analysis::sae_latents(m.loaded.model, s.sae, to_tensor(e.ids));
  }
  auto [vals, idx] = f.topk(std::min<int64_t>(r.k, f.size(1)), /*dim=*/-1);  // [T, k]
  const auto l0 = (f > 0).sum(-1);                                             // [T]
  json latents = json::array(), l0s = json::array();
  for (int64_t t = 0; t < f.size(0); ++t) {
    json row = json::array();
    for (int64_t j = 0; j < vals.size(1); ++j) {
      const double a = vals[t][j].item<double>();
      if (!(a > 0)) break;  // descending: the rest did not fire
      json l = {{"index", idx[t][j].item<int64_t>()}, {"act", r4(a)}};
      if (s.features) l["label"] = s.label(l["index"].get<int64_t>());
      row.push_back(std::move(l));
    }
    latents.push_back(std::move(row));
    l0s.push_back(l0[t].item<int64_t>());
  }
  json out = sae_header(m, s);
  out["tokens"] = input_tokens(m, e);
  out["latents"] = std::move(latents);  // [T][<=k]
  out["l0"] = std::move(l0s);           // [T] latents firing at each token
  return out;
}

json feature_page_endpoint(LabModel& m, const LabSae& s, const FeaturePageRequest& r) {
  check_index(s, r.feature.index, "index");
  const SaeFeatures& f = require_features(s);
  const json& latent = f.latent(r.feature.index);
  json neighbors = json::array();  // the latent's neighbours with their labels
  for (const auto& n : latent["neighbors"]) {
    const int64_t i = n.value("index", int64_t(-1));
    if (i < 0 || i >= s.sae.cfg.d_sae) continue;
    neighbors.push_back({{"index", i}, {"cosine", n.value("cosine", 0.0)}, {"label", s.label(i)}});
  }
  json out = sae_header(m, s);
  out["index"] = r.feature.index;
  out["decoder_norm"] = r4(s.sae.W_dec[r.feature.index].norm().item<double>());
  out["logit_path"] = f.doc.value("logit_path", "");
  out["histogram_bins"] = f.doc["histogram_bins"];
  out["data"] = f.doc["data"];
  out["latent"] = latent;
  out["neighbors"] = std::move(neighbors);
  return out;
}

json feature_search_endpoint(LabModel& m, const LabSae& s, const FeatureSearchRequest& r) {
  const SaeFeatures& f = require_features(s);
  json results = json::array();
  for (const auto& h : search_features(f, r.query, r.limit)) {
    const json& l = f.latent(h.index);
    results.push_back({{"index", h.index},
                       {"label", l["label"]},
                       {"density", l["density"]},
                       {"max", l["max"]},
                       {"score", r4(h.score)},
                       {"matched", h.matched}});
  }
  json out = sae_header(m, s);
  out["query"] = r.query;
  out["results"] = std::move(results);
  return out;
}

json feature_intervention_endpoint(LabModel& m, const LabSae& s, const FeatureInterventionRequest& r) {
  const int64_t F = r.feature.index;
  check_index(s, F, "feature.index");
  const auto prompt = m.encode(r.prompt, r.prepend_bos);
  if (r.position >= int64_t(prompt.ids.size()))
    bad_field("position", "is past the prompt's last token (it has " + std::to_string(prompt.ids.size()) + " tokens)");
  const models::HookFn hook =
      r.kind == "steer" ? analysis::sae_steering_hook(s.sae, F, r.coefficient)
                        : analysis::sae_clamp_hook(s.sae, {{F, r.kind == "clamp" ? r.value : 0.0}}, r.position);
  torch::Tensor observed;  // [T] the latent at each prompt token, before the intervention
  analysis::FeatureIntervention fi;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    observed = analysis::sae_latents(m.loaded.model, s.sae, to_tensor(prompt.ids)).select(1, F);
    fi = analysis::run_feature_intervention(m.loaded.model, s.sae, prompt.ids, hook, r.sampling);
  }
  json out = sae_header(m, s);
  out["intervention"] = r.kind;
  out["feature"] = feature_ref_json(s, F);
  out["prompt"] = r.prompt;
  out["tokens"] = input_tokens(m, prompt);
  out["seed"] = r.sampling.seed;
  if (r.kind == "steer") {
    out["coefficient"] = r.coefficient;
    out["vector_norms"] = json::array({r4(s.sae.W_dec[F].norm().item<double>())});
  } else {
    out["value"] = r.kind == "clamp" ? r.value : 0.0;
    out["position"] = r.position >= 0 ? json(r.position) : json(nullptr);
  }
  out["observed"] = tensor_list(observed);
  out["prompt_kl"] = tensor_list(analysis::kl_divergence(fi.clean_logits, fi.changed_logits));
  // Unrounded: how far the prompt's logits moved (0 up to float error when nothing changed).
  out["max_logit_change"] = (fi.changed_logits - fi.clean_logits).abs().max().item<double>();
  out["unsteered"] = generation_json(m, fi.generation.plain);
  out["steered"] = generation_json(m, fi.generation.changed);
  return out;
}

}  // namespace circuitlab::server
