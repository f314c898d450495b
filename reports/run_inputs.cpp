// Reading a run directory for the report (see run_inputs.h).
#include "reports/run_inputs.h"

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;

json parse_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

std::string base_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto slash = dir.find_last_of('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

int int_field(const json& cfg, std::initializer_list<const char*> keys, const std::string& where,
              bool required) {
  for (const char* k : keys) {
    auto it = cfg.find(k);
    if (it != cfg.end() && it->is_number_integer()) return it->get<int>();
  }
  if (required)
    fail(where + ": field \"" + std::string(*keys.begin()) + "\" missing or not an integer");
  return 0;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open");
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      json row = json::parse(line);
      if (!row.is_object()) fail(path + ":" + std::to_string(lineno) + ": expected a JSON object");
      rows.push_back(std::move(row));
    } catch (const json::parse_error&) {
      // A run killed mid-write leaves at most a partial last line; anything else is corrupt.
      if (in.peek() == EOF) break;
      fail(path + ":" + std::to_string(lineno) + ": not valid JSON");
    }
  }
  return rows;
}

}  // namespace

ModelShape shape_from_config(const json& cfg, const std::string& where) {
  if (!cfg.is_object()) fail(where + ": expected a JSON object");
  ModelShape s;
  // HF GPT-2 keys, or TransformerLens keys (analysis.json's copy marks GPT-2 by "family").
  bool hf = cfg.value("model_type", json("")) == "gpt2" || cfg.contains("n_layer");
  s.gpt2 = hf || cfg.value("family", json("")) == "gpt2";
  if (hf) {
    s.n_layers = int_field(cfg, {"n_layer"}, where, true);
    s.n_heads = int_field(cfg, {"n_head"}, where, true);
    s.d_model = int_field(cfg, {"n_embd"}, where, true);
    s.d_head = s.n_heads > 0 ? s.d_model / s.n_heads : 0;
    s.n_ctx = int_field(cfg, {"n_positions", "n_ctx"}, where, false);
    s.d_vocab = int_field(cfg, {"vocab_size"}, where, false);
    s.normalization = "LN";
    s.positional = "standard";
  } else {
    s.n_layers = int_field(cfg, {"n_layers"}, where, true);
    s.n_heads = int_field(cfg, {"n_heads"}, where, s.n_layers > 0);
    s.d_model = int_field(cfg, {"d_model"}, where, true);
    s.d_head = int_field(cfg, {"d_head"}, where, false);
    s.n_ctx = int_field(cfg, {"n_ctx"}, where, false);
    s.d_vocab = int_field(cfg, {"d_vocab"}, where, false);
    auto nt = cfg.find("normalization_type");
    s.normalization = (nt != cfg.end() && nt->is_string()) ? nt->get<std::string>() : "none";
    s.positional = cfg.value("positional_embedding_type", "standard");
  }
  return s;
}

int64_t safetensors_param_count(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open");
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8)) fail(path + ": shorter than a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];  // little-endian u64
  if (n == 0 || n > (100u << 20)) fail(path + ": safetensors header length " + std::to_string(n) + " is implausible");
  std::string header(n, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(n))) fail(path + ": truncated safetensors header");
  json h;
  try {
    h = json::parse(header);
  } catch (const json::parse_error&) {
    fail(path + ": safetensors header is not valid JSON");
  }
  int64_t total = 0;
  for (auto& [key, info] : h.items()) {
    if (key == "__metadata__") continue;
    auto shape = info.find("shape");
    if (shape == info.end() || !shape->is_array()) fail(path + ": tensor \"" + key + "\" has no shape");
    // HF GPT-2 files carry causal-mask buffers that are not parameters.
    if (key.size() >= 9 && key.compare(key.size() - 9, 9, "attn.bias") == 0) continue;
    if (key.find("masked_bias") != std::string::npos) continue;
    int64_t count = 1;
    for (auto& d : *shape) count *= d.get<int64_t>();
    total += count;
  }
  return total;
}

const json* last_with(const std::vector<json>& rows, const std::string& field) {
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    auto f = it->find(field);
    if (f != it->end() && f->is_number()) return &*it;
  }
  return nullptr;
}

RunInputs load_run(const std::string& dir_in, bool is_gpt2) {
  RunInputs r;
  r.dir = dir_in;
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  r.is_gpt2 = is_gpt2;
  // Either a run directory holding analysis.json, or an analysis .json file itself (e.g. a
  // GPT-2 analysis written next to, not into, the HF model dir).
  bool given_file = !is_directory(dir) && file_exists(dir) && dir.size() > 5 && dir.compare(dir.size() - 5, 5, ".json") == 0;
  if (!given_file && !is_directory(dir)) fail(dir_in + ": run directory does not exist");
  if (given_file) {
    r.analysis_path = dir;
    std::string file = base_name(dir);
    auto slash = dir.find_last_of('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    r.name = file == "analysis.json" ? base_name(dir) : file.substr(0, file.size() - 5);
  } else {
    r.name = base_name(dir);
    r.analysis_path = dir + "/analysis.json";
  }

  if (!file_exists(r.analysis_path))
    fail(r.analysis_path + ": missing (run `circuitlab analyze --model " + dir + "/model --out " +
         r.analysis_path + "` first)");
  r.analysis = parse_json_file(r.analysis_path);
  if (!r.analysis.is_object()) fail(r.analysis_path + ": expected a JSON object");

  // A bare analysis file speaks for itself; a run dir also has training files and the model.
  std::vector<std::string> config_paths, weight_paths;
  if (!given_file) {
    if (file_exists(dir + "/train_config.json")) r.train_config = parse_json_file(dir + "/train_config.json");
    if (file_exists(dir + "/metrics.jsonl")) r.metrics = read_jsonl(dir + "/metrics.jsonl");
    config_paths = {dir + "/model/config.json", dir + "/config.json"};
    weight_paths = {dir + "/model/model.safetensors", dir + "/model.safetensors"};
  }
  if (auto md = r.analysis.find("model_dir"); md != r.analysis.end() && md->is_string() && !md->get<std::string>().empty())
    weight_paths.push_back(md->get<std::string>() + "/model.safetensors");

  // Model config: the model dir of a run, the dir itself (a GPT-2 HF dir), or analysis.json's copy.
  for (const std::string& p : config_paths) {
    if (file_exists(p)) {
      r.model_config = parse_json_file(p);
      r.shape = shape_from_config(r.model_config, p);
      break;
    }
  }
  if (r.model_config.is_null()) {
    auto c = r.analysis.find("config");
    if (c == r.analysis.end() || !c->is_object())
      fail(r.analysis_path + ": field \"config\" missing and no model/config.json beside it");
    r.model_config = *c;
    r.shape = shape_from_config(*c, r.analysis_path + " field config");
  }
  if (r.shape.gpt2) r.is_gpt2 = true;

  for (const std::string& p : weight_paths) {
    if (!file_exists(p)) continue;
    // The count is a model-card nicety: an unreadable weights file leaves it unknown ("—")
    // rather than failing the report (loading the weights is the model layer's job).
    try {
      r.n_params = safetensors_param_count(p);
      r.params_source = p;
    } catch (const Error& e) {
      r.params_source = std::string("unreadable: ") + e.what();
    }
    break;
  }

  for (const std::string& p : std::vector<std::string>{dir + "/phase_change.json", dir + "/snapshots/analysis.json",
                                                      dir + "/snapshots_analysis.json"}) {
    if (given_file) break;
    if (file_exists(p)) {
      r.phase = parse_json_file(p);
      r.phase_path = p;
      break;
    }
  }
  return r;
}

}  // namespace circuitlab::reports
