// Training and evaluation batches from a token shard: seeded random (x, y) windows as in
// nanoGPT's get_batch (x = tokens[i:i+T], y = tokens[i+1:i+1+T]) and sequential eval windows,
// as int64 tensors [B, T], optionally mapped to compact ids. Not a reader (data/shards.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include <torch/torch.h>

#include "data/shards.h"
#include "data/vocab_map.h"

namespace circuitlab::data {

// Random windows. Window offsets are a pure function of (seed, batch index, rank, row):
// offset = splitmix64-hash(seed, (batch * world + rank) * B + row) mod (n - T). So the whole
// RNG state is two integers, resuming from state() reproduces the same stream exactly, and
// data-parallel ranks (rank/world) draw disjoint streams from one seed.
class BatchSampler {
 public:
  struct State {
    uint64_t seed = 0;
    uint64_t batches_drawn = 0;
  };

  // Error when the shard holds fewer than T + 1 tokens.
  BatchSampler(std::shared_ptr<const TokenShard> shard, int64_t batch_size, int64_t ctx,
               uint64_t seed, std::optional<VocabMap> vocab_map = std::nullopt, int rank = 0,
               int world_size = 1);

  // x, y: int64 [B, T] on the CPU; y is x shifted by one position.
  std::pair<torch::Tensor, torch::Tensor> next();
  // Window start offsets of batch `index` (without drawing it): [B].
  std::vector<uint64_t> offsets(uint64_t index) const;

  State state() const { return state_; }
  void set_state(const State& s) { state_ = s; }
  int64_t batch_size() const { return B_; }
  int64_t ctx() const { return T_; }
  const TokenShard& shard() const { return *shard_; }

 private:
  std::shared_ptr<const TokenShard> shard_;
  int64_t B_, T_;
  std::optional<VocabMap> vmap_;
  int rank_, world_;
  State state_;
};

// Sequential, non-overlapping eval windows from the start of the shard: window w covers
// tokens [w*T, w*T + T] (x and y = x shifted). Batches of up to B windows; the last batch may
// be smaller. max_windows > 0 caps the number of windows (for fast eval on a long val set).
class EvalWindows {
 public:
  EvalWindows(std::shared_ptr<const TokenShard> shard, int64_t batch_size, int64_t ctx,
              int64_t max_windows = 0, std::optional<VocabMap> vocab_map = std::nullopt);
  // False when exhausted; otherwise x, y int64 [b, T] with 1 <= b <= B.
  bool next(torch::Tensor& x, torch::Tensor& y);
  void reset() { pos_ = 0; }
  int64_t num_windows() const { return windows_; }
  int64_t num_batches() const { return (windows_ + B_ - 1) / B_; }

 private:
  std::shared_ptr<const TokenShard> shard_;
  int64_t B_, T_, windows_, pos_ = 0;
  std::optional<VocabMap> vmap_;
};

}  // namespace circuitlab::data
