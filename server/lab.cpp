// The lab's registry and dispatch (see lab.h); /api/models and /api/tokenize, which need only
// the registry and the tokenizer, are answered here. Every forward pass on a model holds that
// model's mutex: hooks and the cache switch are per-model state, so passes on one model are
// serialised while different models serve in parallel.
#include "server/lab.h"

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
                   {"examples", m->examples}});
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
  LabModel& m = model_for(req);
  return steer_endpoint(m, parse_steer(req, m.cfg(), limits_));
}

json Lab::generate(const json& req) {
  LabModel& m = model_for(req);
  return generate_endpoint(m, parse_generate(req, limits_));
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
  } catch (const Error& e) {  // analysis/models reject an input: the client's mistake
    throw BadRequest(400, e.what());
  }
  bad("unknown endpoint \"" + endpoint + "\"", 404);
}

}  // namespace circuitlab::server
