// The phase-change tracker: head scores and ICL over a run's snapshots (snapshots/step_<N>/
// model dirs, in step order) and the first snapshot whose best induction head reaches the
// threshold (Olsson et al.'s phase change). Its JSON is phase_change_json (analysis_json.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "analysis/head_scores.h"
#include "analysis/icl.h"

namespace circuitlab::analysis {

struct BestHead {
  int layer = 0, head = 0;
  double score = 0;
};
struct SnapshotScores {
  int64_t step = 0;
  std::optional<int64_t> tokens;    // from metrics.jsonl when the run has it
  int L = 0, H = 0;
  HeadScores head_scores;           // empty for 0-layer snapshots
  std::optional<BestHead> best_induction, best_prev_token;
  std::optional<IclResult> icl;     // with data
};
struct PhaseChangeResult {
  std::string run_dir, data_dir;    // data_dir empty: none
  std::vector<SnapshotScores> snapshots;
  std::optional<size_t> first;      // index of the first snapshot at the threshold
};

PhaseChangeResult track_phase_change(const std::string& run_dir, const AnalyzeOptions& o);

// step -> tokens of RUN_DIR/metrics.jsonl, read strictly (a torn last line is tolerated);
// empty when the file is absent.
std::vector<std::pair<int64_t, int64_t>> tokens_by_step(const std::string& metrics_path);

}  // namespace circuitlab::analysis
