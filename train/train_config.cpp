// TrainConfig <-> JSON, preset lookup and overrides (see train_config.h).
#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::train {

namespace {
const char* kFields[] = {"name", "model", "batch_size", "grad_accum", "seed", "span_repeat_prob",
                         "span_repeat_min_len", "span_repeat_adjacent", "pos_init_std", "steps", "lr", "min_lr", "warmup_steps",
                         "weight_decay", "decay_embeddings", "beta1", "beta2", "adam_eps",
                         "grad_clip", "log_every", "eval_every", "eval_windows",
                         "checkpoint_every", "keep_checkpoints", "snapshots", "description"};

template <class T>
void get(const nlohmann::json& j, const char* key, T& out, const std::string& where) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(where + ": field '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}
}  // namespace

void TrainConfig::validate(const std::string& where) const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail(where + ": " + what);
  };
  model.validate(where + " (model)");
  need(batch_size >= 1, "batch_size must be >= 1");
  need(grad_accum >= 1, "grad_accum must be >= 1");
  need(batch_size % grad_accum == 0, "batch_size must be a multiple of grad_accum");
  need(steps >= 1, "steps must be >= 1");
  need(lr > 0 && std::isfinite(lr), "lr must be > 0");
  need(min_lr >= 0 && min_lr <= lr, "min_lr must be in [0, lr]");
  need(warmup_steps >= 0, "warmup_steps must be >= 0");
  need(weight_decay >= 0, "weight_decay must be >= 0");
  need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "beta1 and beta2 must be in [0, 1)");
  need(adam_eps > 0, "adam_eps must be > 0");
  need(span_repeat_prob >= 0 && span_repeat_prob <= 1, "span_repeat_prob must be in [0, 1]");
  need(span_repeat_prob == 0 || (span_repeat_min_len >= 1 && 2 * span_repeat_min_len <= model.n_ctx + 1),
       "span_repeat_min_len must be in [1, (n_ctx+1)/2]");
  need(log_every >= 1, "log_every must be >= 1");
  need(eval_every >= 0 && eval_windows >= 1, "eval_every must be >= 0 and eval_windows >= 1");
  need(checkpoint_every >= 0 && keep_checkpoints >= 1, "checkpoint_every >= 0, keep_checkpoints >= 1");
  need(snapshots >= 0, "snapshots must be >= 0");
  need(model.d_vocab >= 2 && model.d_vocab <= 50257, "model.d_vocab must be in [2, 50257]");
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j;
  j["name"] = c.name;
  j["model"] = models::to_json(c.model);
  j["batch_size"] = c.batch_size;
  j["grad_accum"] = c.grad_accum;
  j["seed"] = c.seed;
  j["span_repeat_prob"] = c.span_repeat_prob;
  j["span_repeat_min_len"] = c.span_repeat_min_len;
  j["span_repeat_adjacent"] = c.span_repeat_adjacent;
  j["pos_init_std"] = c.pos_init_std;
  j["steps"] = c.steps;
  j["lr"] = c.lr;
  j["min_lr"] = c.min_lr;
  j["warmup_steps"] = c.warmup_steps;
  j["weight_decay"] = c.weight_decay;
  j["decay_embeddings"] = c.decay_embeddings;
  j["beta1"] = c.beta1;
  j["beta2"] = c.beta2;
  j["adam_eps"] = c.adam_eps;
  j["grad_clip"] = c.grad_clip;
  j["log_every"] = c.log_every;
  j["eval_every"] = c.eval_every;
  j["eval_windows"] = c.eval_windows;
  j["checkpoint_every"] = c.checkpoint_every;
  j["keep_checkpoints"] = c.keep_checkpoints;
  j["snapshots"] = c.snapshots;
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where + ": expected a JSON object");
  std::set<std::string> known(std::begin(kFields), std::end(kFields));
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) fail(where + ": unknown field '" + it.key() + "'");
  TrainConfig c;
  get(j, "name", c.name, where);
  if (!j.contains("model")) fail(where + ": missing field 'model' (the model config)");
  c.model = models::config_from_json(j.at("model"), where + " (model)");
  get(j, "batch_size", c.batch_size, where);
  get(j, "grad_accum", c.grad_accum, where);
  get(j, "seed", c.seed, where);
  get(j, "span_repeat_prob", c.span_repeat_prob, where);
  get(j, "span_repeat_min_len", c.span_repeat_min_len, where);
  get(j, "span_repeat_adjacent", c.span_repeat_adjacent, where);
  get(j, "pos_init_std", c.pos_init_std, where);
  get(j, "steps", c.steps, where);
  get(j, "lr", c.lr, where);
  get(j, "min_lr", c.min_lr, where);
  get(j, "warmup_steps", c.warmup_steps, where);
  get(j, "weight_decay", c.weight_decay, where);
  get(j, "decay_embeddings", c.decay_embeddings, where);
  get(j, "beta1", c.beta1, where);
  get(j, "beta2", c.beta2, where);
  get(j, "adam_eps", c.adam_eps, where);
  get(j, "grad_clip", c.grad_clip, where);
  get(j, "log_every", c.log_every, where);
  get(j, "eval_every", c.eval_every, where);
  get(j, "eval_windows", c.eval_windows, where);
  get(j, "checkpoint_every", c.checkpoint_every, where);
  get(j, "keep_checkpoints", c.keep_checkpoints, where);
  get(j, "snapshots", c.snapshots, where);
  c.model.seed = static_cast<int>(c.seed);  // one seed for the run: init and data order
  c.validate(where);
  return c;
}

void apply_overrides(nlohmann::json& j, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("override '" + o + "': expected key=value (e.g. steps=500 or model.d_model=64)");
    std::string key = o.substr(0, eq), val = o.substr(eq + 1);
    nlohmann::json v = nlohmann::json::parse(val, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) v = val;  // bare string
    nlohmann::json* node = &j;
    size_t start = 0, dot;
    while ((dot = key.find('.', start)) != std::string::npos) {
      std::string part = key.substr(start, dot - start);
      if (!node->contains(part) || !(*node)[part].is_object())
        fail("override '" + o + "': '" + part + "' is not a section of the preset");
      node = &(*node)[part];
      start = dot + 1;
    }
    (*node)[key.substr(start)] = v;
  }
}

std::string find_preset(const std::string& name_or_path) {
  if (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json") {
    if (!file_exists(name_or_path)) fail("preset file " + name_or_path + " does not exist");
    return name_or_path;
  }
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("CIRCUITLAB_CONFIGS")) dirs.push_back(env);
  dirs.push_back("configs");
#ifdef CIRCUITLAB_SOURCE_DIR
  dirs.push_back(std::string(CIRCUITLAB_SOURCE_DIR) + "/configs");
#endif
  std::string tried;
  for (const auto& d : dirs) {
    std::string p = d + "/" + name_or_path + ".json";
    if (file_exists(p)) return p;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  fail("preset '" + name_or_path + "' not found (tried " + tried + ")");
}

nlohmann::json load_preset_json(const std::string& name_or_path) {
  std::string path = find_preset(name_or_path);
  auto j = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(path + ": not valid JSON");
  return j;
}

std::vector<int64_t> snapshot_steps(int64_t steps, int count) {
  std::vector<int64_t> out;
  if (count <= 0) return out;
  out.push_back(0);
  double lo = std::log(1.0), hi = std::log(static_cast<double>(steps));
  for (int i = 0; i < count; ++i) {
    double f = count == 1 ? 1.0 : static_cast<double>(i) / (count - 1);
    int64_t s = static_cast<int64_t>(std::llround(std::exp(lo + f * (hi - lo))));
    s = std::clamp<int64_t>(s, 1, steps);
    if (out.back() != s) out.push_back(s);
  }
  return out;
}

}  // namespace circuitlab::train
