// Shared helpers for the train/ tests: a tiny synthetic corpus of repeated random sequences
// written as real token shards, tiny configs, and running the real `circuitlab` binary.
#pragma once
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/shards.h"
#include "models/model_dir.h"
#include "tests/common/all_close.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"
#include "train/train_config.h"

namespace circuitlab::train::testing {

using circuitlab::testing::all_close;
using circuitlab::testing::circuitlab_bin;
using circuitlab::testing::run_shell;
using circuitlab::testing::TempDir;

// Documents of `len` random GPT-2 ids from a pool of `pool` ids, each written twice, then EOT:
// the second copy is predictable only in context (what induction learns).
inline std::vector<int32_t> repeated_corpus(int docs, int len, int pool, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, pool - 1);
  std::vector<int32_t> ids;
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> doc(len);
    for (auto& t : doc) t = 1000 + pick(rng);  // ids 1000.. (any GPT-2 ids)
    ids.insert(ids.end(), doc.begin(), doc.end());
    ids.insert(ids.end(), doc.begin(), doc.end());
    ids.push_back(50256);
  }
  return ids;
}

// train.bin and val.bin of repeated_corpus into `dir` (which exists).
inline void write_data_dir(const std::string& dir, int pool = 48, int len = 12) {
  data::write_nanogpt_shard(dir + "/train.bin", repeated_corpus(3000, len, pool, 1));
  data::write_nanogpt_shard(dir + "/val.bin", repeated_corpus(200, len, pool, 2));
}

// A tiny attention-only config on a compact vocabulary of 64 ids.
inline TrainConfig tiny_config(int layers, int64_t steps) {
  TrainConfig c;
  c.name = "tiny" + std::to_string(layers) + "l";
  c.model.n_layers = layers;
  c.model.d_model = 32;
  c.model.n_heads = 2;
  c.model.d_head = 16;
  c.model.n_ctx = 32;
  c.model.d_vocab = 64;
  c.model.attn_only = true;
  c.model.normalization_type = models::Normalization::None;
  c.model.positional_embedding_type = "shortformer";
  c.batch_size = 16;
  c.steps = steps;
  c.lr = 1e-2;
  c.min_lr = 1e-3;
  c.warmup_steps = 10;
  c.weight_decay = 0.01;
  c.log_every = 5;
  c.eval_every = 50;
  c.eval_windows = 32;
  c.checkpoint_every = 10;
  c.keep_checkpoints = 2;
  c.snapshots = 4;
  return c;
}

inline std::map<std::string, torch::Tensor> weights(const std::string& model_dir) {
  return models::load_model_dir(model_dir).model->state_dict();
}

}  // namespace circuitlab::train::testing
