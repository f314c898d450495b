// The lab's registry and dispatch (see lab.h); /api/models and /api/tokenize, which need only
// the registry and the tokenizer, are answered here. Every forward pass on a model holds that
// model's mutex: hooks and the cache switch are per-model state, so passes on one model are
// serialised while different models serve in parallel.
#include "server/lab.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "data/tokenizer.h"
#include "server/endpoints.h"
#include "server/lab_model.h"
#include "server/views.h"

namespace circuitlab::server {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::string model_name_from_dir(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "model" && p.has_parent_path() && !p.parent_path().filename().empty())
    return p.parent_path().filename().string();
  return p.filename().string();
}
// "" when `sae` can read model m (its hook is a hook point of m and the activation there has
// d_in), else why not. One forward pass of one token.
std::string sae_misfit(LabModel& m, const models::SparseAutoencoder& sae) {
  const std::string& hook = sae.cfg.hook_name;
  if (!m.loaded.model->has_hook_point(hook)) return "model \"" + m.name + "\" has no hook point \"" + hook + "\"";
  try {
    std::lock_guard<std::mutex> lk(m.mu);
    torch::NoGradGuard ng;
    auto [logits, cache] = models::run_with_cache(m.loaded.model, torch::zeros({1, 1}, torch::kLong),
                                                  [&](const std::string& n) { return n == hook; });
    models::sae_input_from_hook(cache.at(hook), sae.cfg);
  } catch (const Error& e) {
    return "model \"" + m.name + "\": " + e.what();
  }
  return "";
}

json saes_json(const LabModel& m) {
  json arr = json::array();
  for (const auto& s : m.saes) {
    const auto& c = s->sae.cfg;
    arr.push_back({{"name", s->name},
                   {"dir", s->dir},
                   {"hook", c.hook_name},
                   {"hook_head_index", c.hook_head_index >= 0 ? json(c.hook_head_index) : json(nullptr)},
                   {"d_in", c.d_in},
                   {"d_sae", c.d_sae},
                   {"architecture", models::sae_architecture_name(c.architecture)},
                   {"k", c.k > 0 ? json(c.k) : json(nullptr)},
                   {"has_features", s->features.has_value()}});
  }
  return arr;
}
}  // namespace

Lab::Lab(const std::string& tokenizer_dir, LabLimits limits) : limits_(limits), tok_mu_(std::make_shared<std::mutex>()) {
  if (tokenizer_dir.empty())
    tok_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load_default());
  else
    tok_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load((fs::path(tokenizer_dir) / "encoder.json").string(),
                                                                   (fs::path(tokenizer_dir) / "vocab.bpe").string()));
}

Lab::~Lab() = default;

std::string Lab::add_model(const std::string& dir, const std::string& name_in) {
  const std::string name = name_in.empty() ? model_name_from_dir(dir) : name_in;
  auto m = load_lab_model(dir, name, tok_.get(), tok_mu_);
  std::lock_guard<std::mutex> lk(models_mu_);
  std::string unique = name;
  for (int k = 2;; ++k) {
    bool taken = false;
    for (const auto& o : models_) taken |= o->name == unique;
    if (!taken) break;
    unique = name + "-" + std::to_string(k);
  }
  m->name = unique;
  models_.push_back(std::move(m));
  return unique;
}

std::vector<std::string> Lab::add_default_models(const std::string& runs_dir) {
  std::vector<std::string> names;
  if (!fs::is_directory(runs_dir)) return names;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(runs_dir))
    if (e.is_directory() && fs::exists(e.path() / "model" / "config.json")) dirs.push_back(e.path() / "model");
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    try {
      names.push_back(add_model(d.string()));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "circuitlab serve: skipping %s: %s\n", d.string().c_str(), e.what());
    }
  }
  return names;
}

bool Lab::sae_name_taken_locked(const std::string& name) const {
  for (const auto& m : models_)
    for (const auto& s : m->saes)
      if (s->name == name) return true;
  return false;
}

std::string Lab::add_sae(const std::string& dir, const std::string& model, const std::string& name) {
  auto s = load_lab_sae(dir);
  std::lock_guard<std::mutex> lk(models_mu_);
  LabModel* target = nullptr;
  std::string why, fits;
  for (auto& m : models_) {
    if (!model.empty() && m->name != model) continue;
    const std::string misfit = sae_misfit(*m, s->sae);
    if (!misfit.empty()) {
      why += (why.empty() ? "" : "; ") + misfit;
      continue;
    }
    if (target)
      fail("SAE " + dir + " fits several loaded models (" + target->name + ", " + m->name + "): name one as " + dir +
           "@MODEL");
    target = m.get();
  }
  if (!target) {
    if (!model.empty() && why.empty()) fail("SAE " + dir + ": no loaded model is named \"" + model + "\"");
    fail("SAE " + dir + " (hook " + s->sae.cfg.hook_name + ", d_in " + std::to_string(s->sae.cfg.d_in) +
         ") fits no loaded model" + (why.empty() ? std::string(" (none is loaded)") : ": " + why));
  }
  const auto canon = [](const std::string& d) {
    fs::path p = fs::weakly_canonical(fs::path(d)).lexically_normal();
    return (p.filename().empty() ? p.parent_path() : p).string();
  };
  for (const auto& o : target->saes)  // the same dir again (e.g. --sae beside a default one): one SAE
    if (canon(o->dir) == canon(dir)) return o->name;
  s->name = name.empty() ? s->name : name;
  if (sae_name_taken_locked(s->name)) s->name = target->name + "/" + s->name;
  for (int k = 2; sae_name_taken_locked(s->name); ++k) s->name = target->name + "/" + s->name + "-" + std::to_string(k);
  s->model = target->name;
  target->saes.push_back(std::move(s));
  return target->saes.back()->name;
}

std::vector<std::string> Lab::add_default_saes() {
  std::vector<std::pair<std::string, std::string>> found;  // (model, sae dir)
  {
    std::lock_guard<std::mutex> lk(models_mu_);
    for (const auto& m : models_) {
      const fs::path d = fs::path(m->loaded.dir).lexically_normal();
      const fs::path md = d.filename().empty() ? d.parent_path() : d;
      if (md.filename() == "model" && fs::exists(md.parent_path() / "sae" / "cfg.json"))
        found.emplace_back(m->name, (md.parent_path() / "sae").string());
    }
  }
  std::vector<std::string> names;
  for (const auto& [model, dir] : found) {
    const std::string base = fs::path(dir).filename().string();
    int same = 0;
    for (const auto& f : found) same += fs::path(f.second).filename().string() == base;
    try {
      names.push_back(add_sae(dir, model, same > 1 ? model + "/" + base : base));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "circuitlab serve: skipping SAE %s: %s\n", dir.c_str(), e.what());
    }
  }
  return names;
}

size_t Lab::n_models() const {
  std::lock_guard<std::mutex> lk(models_mu_);
  return models_.size();
}

const LabModel* Lab::default_model_locked() const {
  const LabModel* best = nullptr;
  for (const auto& m : models_)
    if (!best || capability(*best) < capability(*m)) best = m.get();
  return best;
}

std::string Lab::default_model() const {
  std::lock_guard<std::mutex> lk(models_mu_);
  const LabModel* m = default_model_locked();
  return m ? m->name : "";
}

LabModel& Lab::model_for(const json& req) {
  const std::string want = requested_model(req);
  std::lock_guard<std::mutex> lk(models_mu_);
  if (models_.empty()) bad("no model is loaded (train one with `./run demo` or get GPT-2 with `./run fetch-gpt2`)", 404);
  if (want.empty()) return *const_cast<LabModel*>(default_model_locked());
  for (auto& m : models_)
    if (m->name == want) return *m;
  std::string names;
  for (auto& m : models_) names += (names.empty() ? "" : ", ") + m->name;
  bad("field \"model\": unknown model \"" + want + "\" (loaded: " + names + ")", 404);
}

json Lab::models() const {
  std::lock_guard<std::mutex> lk(models_mu_);
  json arr = json::array();
  bool gpt2 = false;
  for (const auto& m : models_) {
    const auto& c = m->cfg();
    gpt2 |= c.gpt2();
    arr.push_back({{"name", m->name},
                   {"dir", m->loaded.dir},
                   {"family", models::to_string(c.family)},
                   {"n_layers", c.n_layers},
                   {"n_heads", c.n_heads},
                   {"d_model", c.d_model},
                   {"d_head", c.d_head},
                   {"n_ctx", c.n_ctx},
                   {"d_vocab", c.d_vocab},
                   {"attn_only", c.attn_only},
                   {"compact_vocab", m->loaded.vocab_map.has_value()},
                   {"n_params", m->n_params},
                   {"examples", m->examples},
                   {"saes", saes_json(*m)}});
  }
  const LabModel* def = default_model_locked();
  json out = {{"models", arr}, {"gpt2_loaded", gpt2}, {"default_model", def ? json(def->name) : json(nullptr)}};
  if (!gpt2)
    out["gpt2_hint"] =
        "No GPT-2 model is loaded. Get the weights with `./run fetch-gpt2` (writes models/gpt2 in the Hugging Face "
        "layout), then start `circuitlab serve --model models/gpt2` (add --model runs/attn2l/model etc. to keep the "
        "toys).";
  if (models_.empty())
    out["toy_hint"] = "No toy model found under runs/*/model: train the demo models with `./run demo`.";
  return out;
}

json Lab::tokenize(const json& req) {
  LabModel& m = model_for(req);
  const auto r = parse_tokenize(req, limits_);
  const auto e = m.tokenize(r.text, r.prepend_bos);
  return {{"model", m.name},
          {"tokens", input_tokens(m, e)},
          {"n_tokens", e.ids.size()},
          {"n_ctx", m.cfg().n_ctx},
          {"fits", e.ids.size() <= size_t(m.cfg().n_ctx)}};
}

json Lab::run(const json& req) {
  LabModel& m = model_for(req);
  return run_endpoint(m, parse_run(req, m.cfg(), limits_), limits_);
}

json Lab::ablate(const json& req) {
  LabModel& m = model_for(req);
  return ablate_endpoint(m, parse_ablate(req, m.cfg(), limits_));
}

json Lab::patch(const json& req) {
  LabModel& m = model_for(req);
  return patch_endpoint(m, parse_patch(req, limits_), limits_);
}

json Lab::steer(const json& req) {
  if (has_feature(req)) return feature_intervention(req, "steer");
  LabModel& m = model_for(req);
  return steer_endpoint(m, parse_steer(req, m.cfg(), limits_));
}

json Lab::generate(const json& req) {
  LabModel& m = model_for(req);
  return generate_endpoint(m, parse_generate(req, limits_));
}

std::pair<LabModel*, LabSae*> Lab::sae_for(const json& req, const std::string& name, const std::string& key) {
  const std::string want = requested_model(req);
  LabModel* asked = want.empty() ? nullptr : &model_for(req);
  std::lock_guard<std::mutex> lk(models_mu_);
  std::string all;
  for (auto& m : models_)
    for (auto& s : m->saes) {
      if (s->name != name) {
        all += (all.empty() ? "" : ", ") + s->name;
        continue;
      }
      if (asked && asked != m.get()) {
        const std::string& hook = s->sae.cfg.hook_name;
        if (!asked->loaded.model->has_hook_point(hook))
          bad_field(key, "names SAE \"" + name + "\" on hook \"" + hook + "\", which model \"" + asked->name +
                             "\" lacks (the SAE serves model \"" + m->name + "\")");
        bad_field(key, "names SAE \"" + name + "\", which serves model \"" + m->name + "\", not \"" + asked->name + "\"");
      }
      return {m.get(), s.get()};
    }
  bad_field(key, "names no loaded SAE \"" + name + "\" (loaded: " + (all.empty() ? std::string("none; pass --sae DIR to serve") : all) + ")", 404);
}

json Lab::feature_tokens(const json& req) {
  const auto r = parse_feature_tokens(req, limits_);
  auto [m, s] = sae_for(req, r.sae, "sae");
  return feature_tokens_endpoint(*m, *s, r);
}

json Lab::feature_page(const json& req) {
  const auto r = parse_feature_page(req);
  auto [m, s] = sae_for(req, r.feature.sae, "sae");
  return feature_page_endpoint(*m, *s, r);
}

json Lab::feature_search(const json& req) {
  const auto r = parse_feature_search(req, limits_);
  auto [m, s] = sae_for(req, r.sae, "sae");
  return feature_search_endpoint(*m, *s, r);
}

json Lab::feature_intervention(const json& req, const std::string& kind) {
  const auto r = parse_feature_intervention(req, kind, limits_);
  auto [m, s] = sae_for(req, r.feature.sae, "feature.sae");
  return feature_intervention_endpoint(*m, *s, r);
}

json Lab::handle(const std::string& endpoint, const json& req) {
  try {
    if (endpoint == "models") return models();
    if (endpoint == "tokenize") return tokenize(req);
    if (endpoint == "run") return run(req);
    if (endpoint == "ablate") return ablate(req);
    if (endpoint == "patch") return patch(req);
    if (endpoint == "steer") return steer(req);
    if (endpoint == "generate") return generate(req);
    if (endpoint == "features/tokens") return feature_tokens(req);
    if (endpoint == "features/page") return feature_page(req);
    if (endpoint == "features/search") return feature_search(req);
    if (endpoint == "features/clamp") return feature_intervention(req, "clamp");
    if (endpoint == "features/ablate") return feature_intervention(req, "ablate");
  } catch (const Error& e) {  // analysis/models reject an input: the client's mistake
    throw BadRequest(400, e.what());
  }
  bad("unknown endpoint \"" + endpoint + "\"", 404);
}

}  // namespace circuitlab::server
