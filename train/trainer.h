// The training loop: token shards -> a HookedTransformer, AdamW + warmup/cosine, gradient
// clipping and accumulation, periodic eval on val, metrics.jsonl, checkpoints/snapshots, exact
// resume, optional data parallelism. Writes the run directory layout of DESIGN.md. Not the
// command line (apps/cmd_train.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/vocab_map.h"
#include "train/train_config.h"

namespace circuitlab::train {

struct RunOptions {
  std::string data_dir;   // train.bin, val.bin (+ token_counts.json)
  std::string out_dir;    // runs/<name>
  bool resume = false;    // continue from the newest checkpoint in out_dir
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N"
  int threads = 1;        // intra-op threads (and OpenBLAS threads when present)
  int rank = 0, world_size = 1;
  std::string master = "127.0.0.1:29531";
  bool progress = true;   // progress bar on stderr (rank 0)
  int64_t stop_after = -1;  // stop (after checkpointing) once this many steps are done; tests
  // Attention-only CPU models train through the hand-written forward + backward of
  // train/fast_transformer.h (same math, ~2x faster); false forces LibTorch autograd.
  // Env CIRCUITLAB_TRAIN_AUTOGRAD=1 does the same without a code change.
  bool fast_path = true;
};

struct RunSummary {
  int64_t steps = 0, tokens = 0;
  double train_loss = 0, val_loss = 0;  // last logged values
  double val_loss_full_vocab = 0;       // val_loss over the full GPT-2 vocabulary (summary.json)
  double wall_s = 0;                    // this invocation
  double elapsed_s = 0;                 // whole run, across resumes
  double tokens_per_s = 0;              // training throughput of this invocation
};

RunSummary run_training(const TrainConfig& cfg, const RunOptions& opt);

// Default data and vocabulary glue, shared with tests and benches: the compact vocabulary a
// run of `d_vocab` uses on `data_dir` (nullopt for the full GPT-2 vocabulary).
std::optional<data::VocabMap> run_vocab_map(const std::string& data_dir, int d_vocab);
// Training-split GPT-2 token counts of `data_dir` (token_counts.json, else counted): [50257].
std::vector<uint64_t> run_token_counts(const std::string& data_dir);

}  // namespace circuitlab::train
