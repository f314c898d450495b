// The phase-change tracker over a run's snapshots (see phase_change.h).
#include "analysis/phase_change.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "analysis/analysis_json.h"
#include "analysis/analyze_steps.h"
#include "analysis/circuit_weights.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "core/progress.h"
#include "models/model_dir.h"

namespace circuitlab::analysis {

namespace fs = std::filesystem;

namespace {

// snapshots/step_<N>/ directories in step order.
std::vector<std::pair<int64_t, std::string>> snapshot_dirs(const std::string& run_dir) {
  const std::string snap_dir = run_dir + "/snapshots";
  if (!is_directory(snap_dir)) fail(run_dir + ": no snapshots/ directory (expected snapshots/step_<N>/ model dirs)");
  std::vector<std::pair<int64_t, std::string>> snaps;
  for (const auto& e : fs::directory_iterator(snap_dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step_", 0) != 0) continue;
    try {
      snaps.emplace_back(std::stoll(n.substr(5)), e.path().string());
    } catch (const std::exception&) {
      fail(snap_dir + "/" + n + ": expected a directory name step_<N> with an integer N");
    }
  }
  if (snaps.empty()) fail(snap_dir + ": no step_<N> snapshot directories");
  std::sort(snaps.begin(), snaps.end());
  return snaps;
}

// Head scores, the best heads and ICL of one snapshot model dir.
SnapshotScores score_snapshot(int64_t step, const std::string& dir, const std::string& data_dir,
                              std::vector<uint64_t>& counts, const AnalyzeOptions& o) {
  models::LoadedModel lm = models::load_model_dir(dir);
  models::HookedTransformer model = lm.model;
  model->eval();
  const auto& cfg = model->cfg();
  if (!data_dir.empty() && counts.empty()) counts = model_counts(data_dir, lm.vocab_map, cfg.d_vocab);
  TokenPools pools = make_token_pools(cfg, lm.vocab_map, counts);
  std::vector<torch::Tensor> xs, ys;
  if (!data_dir.empty()) load_windows(data_dir, lm.vocab_map, std::min(cfg.n_ctx, o.window_len), o.windows, xs, ys);
  SnapshotScores s;
  s.step = step;
  if (cfg.n_layers > 0) {
    s.L = cfg.n_layers;
    s.H = cfg.n_heads;
    auto sd = model->state_dict();
    CircuitWeights w = fold_circuit_weights(cfg, sd);
    HeadScoreOptions ho;
    ho.seed = o.seed;
    torch::Tensor text;
    if (!xs.empty()) text = xs[0].narrow(1, 0, std::min<int64_t>(xs[0].size(1), o.head_score_text_len));
    s.head_scores = compute_head_scores(model, w, pools, text, ho);
    const HeadScores& hs = s.head_scores;
    int bi = 0, bp = 0;
    for (int i = 0; i < s.L * s.H; ++i) {
      if (hs.induction[i] > hs.induction[bi]) bi = i;
      if (hs.prev_token[i] > hs.prev_token[bp]) bp = i;
    }
    s.best_induction = BestHead{bi / s.H, bi % s.H, hs.induction[bi]};
    s.best_prev_token = BestHead{bp / s.H, bp % s.H, hs.prev_token[bp]};
  }
  if (!xs.empty()) s.icl = icl_score(model, xs, ys);
  return s;
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> tokens_by_step(const std::string& path) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (!file_exists(path)) return out;
  std::ifstream f(path);
  std::string line;
  size_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json m = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (m.is_discarded()) {
      if (f.peek() == EOF) break;  // a run killed mid-write leaves at most a torn last line
      fail(where + ": not valid JSON");
    }
    json_fields::Object row(m, where);
    if (!row.has_value("step") || !row.has_value("tokens")) continue;
    const int64_t step = row.req<int64_t>("step");
    const int64_t tokens = m["tokens"].is_number_integer() ? row.req<int64_t>("tokens")
                                                           : static_cast<int64_t>(row.req<double>("tokens"));
    out.emplace_back(step, tokens);
  }
  return out;
}

PhaseChangeResult track_phase_change(const std::string& run_dir, const AnalyzeOptions& o) {
  torch::NoGradGuard ng;
  const auto snaps = snapshot_dirs(run_dir);
  PhaseChangeResult r;
  r.run_dir = run_dir;
  r.data_dir = o.data_dir;
  if (r.data_dir.empty() && file_exists(run_dir + "/../data/default/val.bin")) r.data_dir = run_dir + "/../data/default";
  std::map<int64_t, int64_t> tokens_at;  // the last line of a step wins (as a resumed run rewrote it)
  for (const auto& [step, tokens] : tokens_by_step(run_dir + "/metrics.jsonl")) tokens_at[step] = tokens;
  ProgressBar bar("snapshots " + run_dir, static_cast<double>(snaps.size()), "snap");
  std::vector<uint64_t> counts;
  int k = 0;
  for (const auto& [step, dir] : snaps) {
    SnapshotScores s = score_snapshot(step, dir, r.data_dir, counts, o);
    if (tokens_at.count(step)) s.tokens = tokens_at[step];
    if (!r.first && s.best_induction && s.best_induction->score >= o.thresholds.induction) r.first = r.snapshots.size();
    r.snapshots.push_back(std::move(s));
    if (o.progress) bar.update(++k, "step " + std::to_string(step));
  }
  if (o.progress) bar.finish();
  return r;
}

nlohmann::json analyze_snapshots(const std::string& run_dir, const AnalyzeOptions& o) {
  return phase_change_json(track_phase_change(run_dir, o), o);
}

}  // namespace circuitlab::analysis
