// Random and sequential (x, y) windows over a token shard (see batches.h).
#include "data/batches.h"

#include "core/error.h"
#include "core/splitmix.h"

namespace circuitlab::data {

namespace {

// Copies windows starting at `starts` into x, y [B, T] (int64), mapping ids when asked.
void fill_windows(const TokenShard& shard, const std::vector<uint64_t>& starts, int64_t T,
                  const std::optional<VocabMap>& vmap, torch::Tensor& x, torch::Tensor& y) {
  const int64_t B = static_cast<int64_t>(starts.size());
  x = torch::empty({B, T}, torch::kInt64);  // [B, T]
  y = torch::empty({B, T}, torch::kInt64);  // [B, T]
  int64_t* xp = x.data_ptr<int64_t>();
  int64_t* yp = y.data_ptr<int64_t>();
  const uint16_t* t = shard.tokens();
  for (int64_t b = 0; b < B; ++b) {
    const uint16_t* w = t + starts[b];
    int64_t* xr = xp + b * T;
    int64_t* yr = yp + b * T;
    if (vmap) {
      int32_t prev = vmap->to_compact(w[0]);
      for (int64_t i = 0; i < T; ++i) {
        int32_t nxt = vmap->to_compact(w[i + 1]);
        xr[i] = prev;
        yr[i] = nxt;
        prev = nxt;
      }
    } else {
      for (int64_t i = 0; i < T; ++i) {
        xr[i] = w[i];
        yr[i] = w[i + 1];
      }
    }
  }
}

}  // namespace

BatchSampler::BatchSampler(std::shared_ptr<const TokenShard> shard, int64_t batch_size, int64_t ctx,
                           uint64_t seed, std::optional<VocabMap> vocab_map, int rank, int world_size)
    : shard_(std::move(shard)), B_(batch_size), T_(ctx), vmap_(std::move(vocab_map)), rank_(rank),
      world_(world_size) {
  TORCH_CHECK(shard_ != nullptr, "BatchSampler: no shard");
  TORCH_CHECK(B_ > 0 && T_ > 0, "BatchSampler: batch size and context must be positive, got B=", B_,
              " T=", T_);
  TORCH_CHECK(world_ > 0 && rank_ >= 0 && rank_ < world_, "BatchSampler: rank ", rank_,
              " outside world size ", world_);
  if (shard_->size() < static_cast<size_t>(T_) + 1)
    fail(shard_->path() + ": " + std::to_string(shard_->size()) + " tokens, need at least context+1 = " +
         std::to_string(T_ + 1) + " for one training window");
  state_.seed = seed;
}

std::vector<uint64_t> BatchSampler::offsets(uint64_t index) const {
  // nanoGPT: ix = randint(len(data) - block_size), so the largest start is n - T - 1.
  const uint64_t range = shard_->size() - static_cast<uint64_t>(T_);
  std::vector<uint64_t> out(B_);
  const uint64_t key = splitmix64(state_.seed ^ 0x5EEDC0DE5EEDC0DEull);
  for (int64_t b = 0; b < B_; ++b) {
    uint64_t row = (index * static_cast<uint64_t>(world_) + rank_) * static_cast<uint64_t>(B_) + b;
    out[b] = splitmix64(key ^ splitmix64(row)) % range;  // bias < range / 2^64: negligible
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> BatchSampler::next() {
  torch::Tensor x, y;
  fill_windows(*shard_, offsets(state_.batches_drawn), T_, vmap_, x, y);
  ++state_.batches_drawn;
  return {x, y};
}

EvalWindows::EvalWindows(std::shared_ptr<const TokenShard> shard, int64_t batch_size, int64_t ctx,
                         int64_t max_windows, std::optional<VocabMap> vocab_map)
    : shard_(std::move(shard)), B_(batch_size), T_(ctx), vmap_(std::move(vocab_map)) {
  TORCH_CHECK(shard_ != nullptr, "EvalWindows: no shard");
  TORCH_CHECK(B_ > 0 && T_ > 0, "EvalWindows: batch size and context must be positive, got B=", B_,
              " T=", T_);
  int64_t n = static_cast<int64_t>(shard_->size());
  windows_ = n > T_ ? (n - 1) / T_ : 0;
  if (windows_ == 0)
    fail(shard_->path() + ": " + std::to_string(n) + " tokens, need at least context+1 = " +
         std::to_string(T_ + 1) + " for one eval window");
  if (max_windows > 0) windows_ = std::min(windows_, max_windows);
}

bool EvalWindows::next(torch::Tensor& x, torch::Tensor& y) {
  if (pos_ >= windows_) return false;
  int64_t b = std::min(B_, windows_ - pos_);
  std::vector<uint64_t> starts(b);
  for (int64_t i = 0; i < b; ++i) starts[i] = static_cast<uint64_t>((pos_ + i) * T_);
  fill_windows(*shard_, starts, T_, vmap_, x, y);
  pos_ += b;
  return true;
}

}  // namespace circuitlab::data
