// The SAE activation store: model forwards over sampler windows into a round-based shuffle
// buffer. See sae_activation_store.h.
#include "train/sae_activation_store.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/splitmix.h"
#include "data/batches.h"
#include "models/hook_names.h"
#include "models/run_to_hook.h"

namespace circuitlab::train {

namespace {
bool head_shaped(const std::string& hook) {
  const std::string k = models::hook_kind(hook);
  return k == "z" || k == "q" || k == "k" || k == "v";
}
}  // namespace

int64_t sae_hook_width(const torch::Tensor& act, const std::string& hook, int64_t head_index) {
  if (head_shaped(hook) && act.dim() >= 3) return head_index >= 0 ? act.size(-1) : act.size(-1) * act.size(-2);
  return act.size(-1);
}

ActivationStore::ActivationStore(models::HookedTransformer model, std::shared_ptr<const data::TokenShard> shard,
                                 std::optional<data::VocabMap> vocab_map, ActivationStoreOptions opt)
    : model_(std::move(model)), opt_(std::move(opt)) {
  if (opt_.hooks.empty()) fail("hook: at least one hook point is needed");
  std::set<std::string> seen;
  for (auto& h : opt_.hooks) {
    std::string full;
    try {
      full = models::hook_name(h);
    } catch (const Error&) {
      full = h;
    }
    if (!model_->has_hook_point(full))
      fail("hook: unknown hook name '" + h + "' for this model (e.g. " + models::hooks::resid_post(0) + ", " +
           models::hooks::attn_out(0) + ", " + models::hooks::z(0) + ")");
    if (!seen.insert(full).second) fail("hook: '" + full + "' is listed twice");
    h = full;
  }
  const int64_t n_ctx = model_->cfg().n_ctx;
  T_ = opt_.context > 0 ? opt_.context : std::min<int64_t>(n_ctx, 128);
  if (T_ > n_ctx) fail("context: " + std::to_string(T_) + " exceeds the model's n_ctx " + std::to_string(n_ctx));
  if (opt_.batch_tokens < 1) fail("batch_tokens: must be >= 1, got " + std::to_string(opt_.batch_tokens));
  if (opt_.round_batches < 1) fail("round_batches: must be >= 1");
  if (opt_.windows_per_forward < 1) fail("windows_per_forward: must be >= 1");
  // Enough forwards that a round holds round_batches SAE batches.
  const int64_t want = opt_.batch_tokens * opt_.round_batches;
  const int64_t per_forward = opt_.windows_per_forward * T_;
  forwards_per_round_ = (want + per_forward - 1) / per_forward;
  round_tokens_ = forwards_per_round_ * per_forward;
  sampler_ = std::make_unique<data::BatchSampler>(std::move(shard), opt_.windows_per_forward, T_, opt_.seed,
                                                  std::move(vocab_map), opt_.rank, opt_.world_size);
  // Widths from one short forward.
  torch::NoGradGuard ng;
  const models::ActivationCache cache =
      models::run_to_hooks(model_, torch::zeros({1, std::min<int64_t>(T_, 4)}, torch::kLong), opt_.hooks);
  for (const auto& h : opt_.hooks) {
    const torch::Tensor& a = cache.at(h);
    if (opt_.hook_head_index >= 0 && head_shaped(h) && opt_.hook_head_index >= a.size(-2))
      fail("hook_head_index: " + std::to_string(opt_.hook_head_index) + " but " + h + " has " +
           std::to_string(a.size(-2)) + " heads");
    widths_.push_back(sae_hook_width(a, h, head_shaped(h) ? opt_.hook_head_index : -1));
  }
}

void ActivationStore::fill_round(uint64_t r) {
  torch::NoGradGuard ng;
  std::vector<std::vector<torch::Tensor>> parts(opt_.hooks.size());
  data::BatchSampler::State s = sampler_->state();
  s.batches_drawn = r * static_cast<uint64_t>(forwards_per_round_);
  sampler_->set_state(s);
  // The layers after the last hook, and the unembedding (the biggest product of a small model),
  // are never run (models::run_to_hooks).
  for (int64_t f = 0; f < forwards_per_round_; ++f) {
    auto [x, y] = sampler_->next();
    const models::ActivationCache cache = models::run_to_hooks(model_, x, opt_.hooks);
    for (size_t i = 0; i < opt_.hooks.size(); ++i) {
      torch::Tensor a = cache.at(opt_.hooks[i]);
      if (head_shaped(opt_.hooks[i]) && a.dim() >= 3)
        a = opt_.hook_head_index >= 0 ? a.select(-2, opt_.hook_head_index) : a.flatten(-2, -1);
      parts[i].push_back(a.reshape({-1, widths_[i]}).to(torch::kFloat));
    }
  }
  auto gen = at::detail::createCPUGenerator(
      splitmix64(splitmix64(opt_.seed ^ 0xB0FFull) + r * static_cast<uint64_t>(opt_.world_size) + opt_.rank));
  const torch::Tensor perm = torch::randperm(round_tokens_, gen, torch::kLong);
  buffer_.clear();
  for (auto& p : parts) buffer_.push_back(torch::cat(p, 0).index_select(0, perm).contiguous());
  filled_round_ = r;
}

std::vector<torch::Tensor> ActivationStore::next() {
  const int64_t per_round = round_tokens_ / opt_.batch_tokens;
  if (state_.batch >= per_round) {
    state_.round += 1;
    state_.batch = 0;
  }
  if (filled_round_ != state_.round) fill_round(state_.round);
  std::vector<torch::Tensor> out;
  const int64_t from = state_.batch * opt_.batch_tokens;
  for (const auto& b : buffer_) out.push_back(b.narrow(0, from, opt_.batch_tokens));
  state_.batch += 1;
  return out;
}

const std::vector<torch::Tensor>& ActivationStore::round(uint64_t r) {
  if (filled_round_ != r) fill_round(r);
  return buffer_;
}

void ActivationStore::set_state(const State& s) { state_ = s; }

}  // namespace circuitlab::train
