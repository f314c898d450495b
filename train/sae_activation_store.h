// Activations for SAE training: the model's forward over shard windows (the trainer's
// BatchSampler, the model's compact vocabulary, no BOS added), several hook points from one
// forward pass, and a shuffle buffer. The buffer fills in rounds: round r draws its windows
// (sampler batches r·F .. r·F+F−1), runs F forwards, and hands out the round's tokens in a
// permutation seeded by (seed, r). So the store's whole state is (round, batch in round) and a
// resume recomputes the round it stopped in: the same batches, bit for bit.
// Not a trainer (sae_trainer.h).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/batches.h"
#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::train {

struct ActivationStoreOptions {
  std::vector<std::string> hooks;  // full TransformerLens names (short names are resolved)
  int64_t hook_head_index = -1;    // head-shaped hooks (hook_z, q, k, v): one head; -1 all concatenated
  int64_t context = 0;             // window length T (0: min(n_ctx, 128))
  int64_t windows_per_forward = 8;
  int64_t batch_tokens = 4096;     // tokens per SAE batch
  int64_t round_batches = 16;      // SAE batches per shuffle round (the buffer holds this many)
  uint64_t seed = 0;
  int rank = 0, world_size = 1;  // data parallel: disjoint window streams from one seed
};

// The width of an SAE input at `hook` from one activation there (hook_z: H·Dh, or Dh with a head).
int64_t sae_hook_width(const torch::Tensor& act, const std::string& hook, int64_t head_index);

class ActivationStore {
 public:
  struct State {
    uint64_t round = 0;
    int64_t batch = 0;  // batches already handed out from this round
  };

  // Error naming the hook when the model has no such point; Error when the shard is too short.
  ActivationStore(models::HookedTransformer model, std::shared_ptr<const data::TokenShard> shard,
                  std::optional<data::VocabMap> vocab_map, ActivationStoreOptions opt);

  // One batch per hook, in the order of opt.hooks: [batch_tokens, d_in(h)] float32.
  std::vector<torch::Tensor> next();
  // The shuffled buffer of round r, per hook [round tokens, d] (initialisation samples);
  // does not move the state.
  const std::vector<torch::Tensor>& round(uint64_t r);
  State state() const { return state_; }
  void set_state(const State& s);

  const std::vector<std::string>& hooks() const { return opt_.hooks; }
  const std::vector<int64_t>& widths() const { return widths_; }
  int64_t context() const { return T_; }

 private:
  void fill_round(uint64_t r);
  models::HookedTransformer model_;
  std::unique_ptr<data::BatchSampler> sampler_;
  ActivationStoreOptions opt_;
  int64_t T_ = 0, forwards_per_round_ = 0, round_tokens_ = 0;
  std::vector<int64_t> widths_;
  std::vector<torch::Tensor> buffer_;  // per hook [round tokens, d], already permuted
  uint64_t filled_round_ = ~uint64_t(0);
  State state_;
};

}  // namespace circuitlab::train
