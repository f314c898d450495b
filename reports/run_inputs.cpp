// Reading a run directory for the report (see run_inputs.h).
#include "reports/run_inputs.h"

#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "reports/analysis_schema.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;

json parse_json_file(const std::string& path) { return json_fields::parse_file(path); }

std::string base_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto slash = dir.find_last_of('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
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
      check_metrics_row(row, path + ":" + std::to_string(lineno));
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
  json_fields::Object o(cfg, where);
  ModelShape s;
  s.gpt2 = o.get_or<std::string>("family", "") == "gpt2";
  s.n_layers = o.req<int>("n_layers");
  s.n_heads = s.n_layers > 0 ? o.req<int>("n_heads") : o.get_or<int>("n_heads", 0);
  s.d_model = o.req<int>("d_model");
  s.d_head = o.get_or<int>("d_head", 0);
  s.n_ctx = o.get_or<int>("n_ctx", 0);
  s.d_vocab = o.get_or<int>("d_vocab", 0);
  s.normalization = o.get_or<std::string>("normalization_type", "none");
  s.positional = o.get_or<std::string>("positional_embedding_type", "standard");
  return s;
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
  check_analysis_json(r.analysis, r.analysis_path);

  // A bare analysis file speaks for itself; a run dir also has its training files.
  if (!given_file) {
    if (file_exists(dir + "/train_config.json")) {
      r.train_config = parse_json_file(dir + "/train_config.json");
      if (!r.train_config.is_object()) fail(dir + "/train_config.json: expected a JSON object");
    }
    if (file_exists(dir + "/metrics.jsonl")) r.metrics = read_jsonl(dir + "/metrics.jsonl");
  }

  // The model's shape and size as the analysis recorded them (ANALYSIS_JSON.md "config", "n_params").
  json_fields::Object a(r.analysis, r.analysis_path);
  r.model_config = a.raw().at("config");  // check_analysis_json: present and an object
  r.shape = shape_from_config(r.model_config, r.analysis_path + " [config]");
  if (r.shape.gpt2) r.is_gpt2 = true;
  if (a.has_value("n_params")) r.n_params = static_cast<int64_t>(a.req<uint64_t>("n_params"));

  for (const std::string& p : std::vector<std::string>{dir + "/phase_change.json", dir + "/snapshots/analysis.json",
                                                      dir + "/snapshots_analysis.json"}) {
    if (given_file) break;
    if (file_exists(p)) {
      r.phase = parse_json_file(p);
      check_phase_change_json(r.phase, p);
      r.phase_path = p;
      break;
    }
  }
  if (!given_file) r.sae = load_sae(dir);
  return r;
}

}  // namespace circuitlab::reports
