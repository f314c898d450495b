// The steps of the analysis driver (analyze.cpp) and what each returns: the analyses run on
// one model, the selections made from them (top composition pairs, sampled heads, skip-trigram
// sources) and the inputs read from a data dir. Their JSON is analysis_json.h's job.
// Not the analyses themselves (each has its own file) and not the command line.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/analyze.h"
#include "analysis/bigram.h"
#include "analysis/circuit_weights.h"
#include "analysis/composition.h"
#include "analysis/eigen_positivity.h"
#include "analysis/head_scores.h"
#include "analysis/icl.h"
#include "analysis/skip_trigrams.h"
#include "analysis/term_importance.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

// ---- inputs from a prepared data dir (shared with the phase-change tracker) ----
// Occurrences per model id [d_vocab]: token_counts.json beside train.bin, else counted.
std::vector<uint64_t> model_counts(const std::string& data_dir, const std::optional<data::VocabMap>& vmap, int d_vocab);
// Up to n val windows of T tokens: xs/ys each [b, T] (model ids).
void load_windows(const std::string& data_dir, const std::optional<data::VocabMap>& vmap, int T, int n,
                  std::vector<torch::Tensor>& xs, std::vector<torch::Tensor>& ys);
torch::Dtype big_dtype(Precision p, const models::ModelConfig& c);

// ---- step results ----
struct CompositionPair {
  const char* kind = "q";  // "q" | "k" | "v"
  int l1 = 0, h1 = 0, l2 = 0, h2 = 0;
  double score = 0;
};
struct CompositionResult {
  int L = 0, H = 0;
  CompositionScores scores;
  CompositionBaseline baseline;
  std::vector<CompositionPair> top;  // per kind q, k, v: the top_k largest, descending
};
// The o.composition_top_k largest scores per kind over pairs l1 < l2 (stable: ties keep
// layer-major order).
std::vector<CompositionPair> top_composition_pairs(const CompositionScores& s, int top_k);
CompositionResult composition_step(const CircuitWeights& w, torch::Dtype dtype, const AnalyzeOptions& o);

struct SkipTrigramResult {
  std::vector<int64_t> sources;  // by corpus count with data, else by summed OV row norm
  int top_k = 10;
  int text_pairs = 3;
  std::vector<SkipTrigramHead> heads;
  std::optional<std::vector<SkipTrigramBug>> bugs;  // nullopt without data
};
// counts: per model id (empty without data); bc: corpus bigrams (null without data).
SkipTrigramResult skip_trigram_step(const CircuitWeights& w, const TokenPools& pools, const std::vector<uint64_t>& counts,
                                    const BigramCounts* bc, const std::optional<data::VocabMap>& vmap,
                                    const AnalyzeOptions& o);

struct TermImportanceResult {
  TermImportance t;
  bool per_head_ok = true;  // false: per-head ablations skipped (more heads than per_head_max)
  int n_heads = 0, per_head_max = 0;
};

struct AttentionSample {
  std::string name;                          // "repeated_random" | "text"
  torch::Tensor tokens;                      // [1, T] model ids
  std::vector<std::pair<int, int>> heads;    // (layer, head)
  std::vector<torch::Tensor> patterns;       // [T, T] per head, row = query
};
// Every head of small models; else the top o.sample_heads_per_score heads by prev-token,
// induction and duplicate score (deduplicated, layer-major).
std::vector<std::pair<int, int>> sample_heads(const HeadScores& hs, int L, int H, const AnalyzeOptions& o);
AttentionSample attention_sample(models::HookedTransformer& model, const std::string& name, const torch::Tensor& toks,
                                 const std::vector<std::pair<int, int>>& heads);

// Everything analysis.json reports about one model, as computed.
struct AnalysisResult {
  models::ModelConfig cfg;
  bool have_data = false;
  int64_t n_params = 0;
  bool compact_vocab = false;
  std::optional<int64_t> bos, other;  // model ids
  std::string folding_statement;
  HeadScoreOptions head_score_options;
  bool pools_trimmed_by_counts = false;
  std::vector<HeadPositivity> positivity;
  HeadScores head_scores;
  std::optional<CompositionResult> composition;  // n_layers >= 2
  BigramTable bigram;
  std::optional<SkipTrigramResult> skip_trigrams;  // 1-layer models
  std::optional<IclResult> icl;                      // with data
  std::optional<TermImportanceResult> term_importance;  // with data, n_layers >= 1
  std::vector<AttentionSample> samples;
  std::vector<std::pair<std::string, double>> timings_s;  // per step, in order
  double elapsed_s = 0;
};

}  // namespace circuitlab::analysis
