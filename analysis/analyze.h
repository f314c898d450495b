// The whole battery on one model dir, written as analysis.json (schema: ANALYSIS_JSON.md),
// and the phase-change tracker over a run's snapshots: the entry points and their options.
// The driver's steps are analyze_steps.h, their JSON analysis_json.h, the tracker
// phase_change.h; the analyses themselves live in their own files.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace circuitlab::analysis {

struct Thresholds {
  double prev_token = 0.4, induction = 0.4, duplicate = 0.4, prefix_matching = 0.4, copying = 0.5, first_token = 0.8;
};

// Precision of the vocabulary-sized products (circuit weights, Grams, composition).
enum class Precision { Auto, Double, Float };  // Auto: float when V·D² > 2e9, else double

struct AnalyzeOptions {
  std::string model_dir;
  std::string data_dir;          // empty: no data (no ICL, term importance or corpus bigrams)
  int threads = 0;
  uint64_t seed = 0;
  Thresholds thresholds;
  int bigram_rows = 50, top_k = 10;
  int skip_sources = 30;         // source tokens per head for skip-trigram tables
  int windows = 16;              // val windows for ICL and term importance
  int window_len = 512;          // capped at n_ctx
  int per_head_max = 48;         // per-head ablations only for models with at most this many heads
  int baseline_samples = 200;
  uint64_t bigram_max_tokens = 20'000'000;
  int bigram_sources = 4000;       // most frequent sources whose next-token counts are kept
  int composition_top_k = 10;      // composition.top_k: largest pairs listed per kind
  int head_score_text_len = 128;   // val tokens the prev/current/first-token scores read
  int sample_all_heads_max = 32;   // attention samples: every head of models with at most this many
  int sample_heads_per_score = 3;  // ... else the top heads by prev-token, induction, duplicate score
  int sample_repeat_len = 20;      // the [BOS, r, r] sample's r (capped by n_ctx)
  int sample_text_len = 48;        // the text sample's val tokens
  int skip_text_pairs = 3;         // skip-trigram "source … dest → out" lines: top dests × top outs
  Precision precision = Precision::Auto;
  bool progress = true;
};

nlohmann::json analyze_model(const AnalyzeOptions& opts);
// run_dir/snapshots/step_<N>/ for every N; opts.data_dir (or run_dir/../data/default when it
// exists) for ICL. Defined in phase_change.cpp.
nlohmann::json analyze_snapshots(const std::string& run_dir, const AnalyzeOptions& opts);

// Writes j to path atomically (pretty-printed with 1-space indent; NaN/Inf already null).
void write_json_atomic(const std::string& path, const nlohmann::json& j);

}  // namespace circuitlab::analysis
