// TrainConfig <-> JSON, preset lookup and overrides (see train_config.h).
#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"

namespace circuitlab::train {

namespace {

using nlohmann::json;

// Reads each listed field that the preset carries (absent: the struct's default).
struct Reader {
  json_fields::Object& o;
  template <class T, class B = int>
  void operator()(const char* key, T& v, B = 0, B = 0) const { o.opt(key, v); }
  void model(const char* key, models::ModelConfig& m) const {
    if (!o.has_value(key)) fail(o.where() + ": field 'model' is missing (the model config)");
    m = models::config_from_json(o.raw().at(key), o.where() + " (model)");
    o.allow({key});
  }
};

struct Writer {
  json& j;
  template <class T, class B = int>
  void operator()(const char* key, const T& v, B = 0, B = 0) const { j[key] = v; }
  void model(const char* key, const models::ModelConfig& m) const { j[key] = models::to_json(m); }
};

// The list's bounds: "<where>: <field> must be >= lo" (or in [lo, hi]).
struct Checker {
  const std::string& where;
  template <class T>
  void operator()(const char*, const T&) const {}
  template <class T, class B>
  void operator()(const char* key, const T& v, B lo, B hi) const {
    if (v >= lo && v <= hi) return;
    std::ostringstream m;
    m << where << ": " << key << " must be ";
    bool open_above = hi == std::numeric_limits<B>::max();
    if constexpr (std::is_floating_point_v<B>) open_above = open_above || hi == std::numeric_limits<B>::infinity();
    if (open_above) m << ">= " << lo;
    else m << "in [" << lo << ", " << hi << "]";
    m << ", got " << v;
    fail(m.str());
  }
  void model(const char* key, const models::ModelConfig& m) const { m.validate(where + " (" + key + ")"); }
};

}  // namespace

void TrainConfig::validate(const std::string& where) const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail(where + ": " + what);
  };
  visit_fields(*this, Checker{where});
  need(batch_size % grad_accum == 0, "batch_size must be a multiple of grad_accum");
  need(lr > 0 && std::isfinite(lr), "lr must be > 0");
  need(min_lr >= 0 && min_lr <= lr, "min_lr must be in [0, lr]");
  need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "beta1 and beta2 must be in [0, 1)");
  need(adam_eps > 0, "adam_eps must be > 0");
  need(span_repeat_prob == 0 || (span_repeat_min_len >= 1 && 2 * span_repeat_min_len <= model.n_ctx + 1),
       "span_repeat_min_len must be in [1, (n_ctx+1)/2]");
  need(model.d_vocab >= 2 && model.d_vocab <= 50257, "model.d_vocab must be in [2, 50257]");
}

bool operator==(const TrainConfig& a, const TrainConfig& b) {
  return a.model == b.model && to_json(a) == to_json(b);
}

json to_json(const TrainConfig& c) {
  json j;
  TrainConfig::visit_fields(c, Writer{j});
  return j;
}

TrainConfig train_config_from_json(const json& j, const std::string& where) {
  json_fields::Object o(j, where);
  TrainConfig c;
  TrainConfig::visit_fields(c, Reader{o});
  o.allow({"description"});
  o.finish();
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
