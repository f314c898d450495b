// Reading a run directory for the report (see run_inputs.h).
#include "reports/run_inputs.h"

#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "reports/analysis_schema.h"

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
  if (!cfg.is_object()) fail(where + ": expected a JSON object");
  ModelShape s;
  s.gpt2 = cfg.value("family", json("")) == "gpt2";
  s.n_layers = int_field(cfg, {"n_layers"}, where, true);
  s.n_heads = int_field(cfg, {"n_heads"}, where, s.n_layers > 0);
  s.d_model = int_field(cfg, {"d_model"}, where, true);
  s.d_head = int_field(cfg, {"d_head"}, where, false);
  s.n_ctx = int_field(cfg, {"n_ctx"}, where, false);
  s.d_vocab = int_field(cfg, {"d_vocab"}, where, false);
  auto nt = cfg.find("normalization_type");
  s.normalization = (nt != cfg.end() && nt->is_string()) ? nt->get<std::string>() : "none";
  s.positional = cfg.value("positional_embedding_type", "standard");
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
  auto c = r.analysis.find("config");
  if (c == r.analysis.end() || !c->is_object()) fail(r.analysis_path + ": field \"config\" missing or not an object");
  r.model_config = *c;
  r.shape = shape_from_config(*c, r.analysis_path + " field config");
  if (r.shape.gpt2) r.is_gpt2 = true;
  if (auto n = r.analysis.find("n_params"); n != r.analysis.end()) {
    if (!n->is_number_integer() || n->get<int64_t>() < 0)
      fail(r.analysis_path + ": field \"n_params\" must be a non-negative integer");
    r.n_params = n->get<int64_t>();
  }

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
  return r;
}

}  // namespace circuitlab::reports
