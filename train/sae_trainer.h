// SAE training from a model: activations stream from the model's forward (sae_activation_store.h)
// into one SaeTrainingState per hook; progress bar, metrics.jsonl, atomic checkpoints and a
// bit-identical --resume (same thread count), data parallel over c10d, then one SAELens
// directory per hook.
// Layout of out_dir: with one hook, out_dir is the SAE directory; with several, out_dir/<hook>/
// each; beside them metrics.jsonl, sae_train_config.json, summary.json and checkpoints/step_N/.
// Not the command line (apps/cmd_sae.cpp) and no evaluation (analysis/sae_eval.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/sae.h"
#include "train/sae_step.h"

namespace circuitlab::train {

struct SaeTrainOptions {
  std::string model_dir, data_dir, out_dir;  // data_dir: holds train.bin (or is a shard file)
  std::vector<std::string> hooks;
  int64_t hook_head_index = -1;
  models::SaeArchitecture architecture = models::SaeArchitecture::TopK;
  int64_t d_sae = 0;  // 0: 8·d_in
  int64_t k = 32;
  int64_t tokens = 1000000;      // training tokens (per SAE)
  int64_t batch_tokens = 4096;
  int64_t context = 0;           // 0: min(n_ctx, 128)
  int64_t round_batches = 16;    // shuffle buffer size in batches
  int64_t checkpoint_every = 0;  // steps; 0: about 10 per run
  int64_t keep_checkpoints = 2;
  int64_t log_every = 10;        // steps between metrics.jsonl rows
  bool geometric_median = false; // b_dec init
  int64_t resample_every = -1;   // standard (L1) SAE: resample dead latents every N steps in the
                                 // first 3/4 of the run; -1: total_steps / 8; 0: never
  uint64_t seed = 0;
  bool resume = false;
  bool progress = true;
  int64_t stop_after = -1;       // stop (after checkpointing) once this many steps are done; tests
  // Data parallel over c10d (train/data_parallel.h): each rank forwards its share of every batch
  // (batch_tokens / world_size) from a disjoint window stream; gradients and firing counts are
  // all-reduced, so every rank applies the same step. Rank 0 alone writes files.
  int rank = 0, world_size = 1;
  std::string master = "127.0.0.1:29541";
  SaeStepOptions step;
};

struct SaeTrainSummary {
  int64_t steps = 0, tokens = 0;
  double seconds = 0, tokens_per_s = 0;
  std::vector<std::string> sae_dirs;  // one per hook
  std::vector<double> l0, explained_variance, dead_fraction;  // last batch's, per hook
};

SaeTrainSummary run_sae_training(const SaeTrainOptions& opt);

// The directory of hook `hook` under out_dir ("out_dir" itself for a single hook).
std::string sae_dir_for(const std::string& out_dir, const std::vector<std::string>& hooks, const std::string& hook);

}  // namespace circuitlab::train
