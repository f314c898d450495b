// Resumable checkpoints: runs/<name>/checkpoints/step_<N>/ = a model dir (config.json,
// model.safetensors, vocab_map.json) + optimizer.pt (AdamW moments and step counts) + rng.pt
// (the CPU generator) + state.json (step, tokens, sampler position, elapsed time). Written into
// a temp dir (each file fsynced), then renamed into place and the parent fsynced: a step_<N>
// either is complete or does not exist. Not the trainer loop (trainer.h).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/batches.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::train {

struct TrainerState {
  int64_t step = 0;    // optimizer steps completed
  int64_t tokens = 0;  // training tokens consumed (all ranks)
  double elapsed_s = 0;
  data::BatchSampler::State sampler;  // rank 0's; ranks share seed and batch count
};

// Saves step_<state.step> under `root` and keeps the newest `keep` step_* dirs.
// Returns the checkpoint dir.
std::string save_checkpoint(const std::string& root, const TrainerState& state, models::HookedTransformer& model,
                            torch::optim::Optimizer& opt, const data::VocabMap* vocab_map, int keep);

// Newest complete checkpoint dir under `root` (nullopt when none).
std::optional<std::string> latest_checkpoint(const std::string& root);
// Every complete checkpoint dir, oldest first.
std::vector<std::string> list_checkpoints(const std::string& root);

// Restores model weights, optimizer state and the CPU RNG; returns the trainer state.
// Error naming the file when something is missing or does not match the model.
TrainerState load_checkpoint(const std::string& dir, models::HookedTransformer& model, torch::optim::Optimizer& opt,
                             const torch::Device& device);

// fsync a directory (after a rename inside it). Error naming the path on failure.
void fsync_dir(const std::string& dir);

// Commits a fully written checkpoint dir `tmp` (its files already fsynced) as `final_dir` under
// `root`: fsyncs `tmp`, replaces an existing `final_dir` (moved aside to `.old-<pid>`, then
// removed), renames, fsyncs `root`, keeps the newest `keep` (at least 1) complete step_* dirs
// and removes stale `.tmp-step_*` / `.old-` entries of dead writers.
void commit_checkpoint_dir(const std::string& root, const std::string& tmp, const std::string& final_dir,
                           int64_t keep);

}  // namespace circuitlab::train
