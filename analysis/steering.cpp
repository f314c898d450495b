// ActAdd steering and the sampler (see steering.h).
#include "analysis/steering.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "models/hook_names.h"
#include "core/splitmix.h"

namespace circuitlab::analysis {

namespace {
// The stateful splitmix64 stream: the hash of the state, then the state advances by the
// golden-ratio increment (core/splitmix.h adds it before hashing, so this is the same stream).
uint64_t next_u64(uint64_t& s) {
  const uint64_t z = splitmix64(s);
  s += 0x9E3779B97F4A7C15ULL;
  return z;
}
double uniform01(uint64_t& s) { return double(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }
}  // namespace

namespace {
// Partitions `order` (ids 0..V-1) so that order[0, keep) is the kept set and returns keep: V
// when no filter applies. The kept set (top-k, then the smallest top-p nucleus) under the
// strict order "higher probability first, ties by lower id" is found by selection, not
// sorting: nth_element at k, then a bisection on the nucleus size where each step partitions
// only the undecided range (O(V) expected).
int64_t partition_kept(const double* probs, const SamplingParams& p, std::vector<int64_t>& order) {
  const int64_t V = static_cast<int64_t>(order.size());
  auto before = [&](int64_t a, int64_t b) { return probs[a] != probs[b] ? probs[a] > probs[b] : a < b; };
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = V;
  if (p.top_k > 0 && p.top_k < V) {
    keep = p.top_k;
    std::nth_element(order.begin(), order.begin() + keep, order.end(), before);
  }
  if (p.top_p < 1.0) {
    double in_keep = 0;
    for (int64_t i = 0; i < keep; ++i) in_keep += probs[order[i]];
    if (in_keep >= p.top_p) {
      // Invariant: order[0, lo) are the lo most likely tokens and hold less than top_p;
      // order[lo, hi) are the next ones (unordered); the hi most likely hold at least top_p.
      int64_t lo = 0, hi = keep;
      double cum_lo = 0;
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        std::nth_element(order.begin() + lo, order.begin() + mid, order.begin() + hi, before);
        double cum_mid = cum_lo;
        for (int64_t i = lo; i < mid; ++i) cum_mid += probs[order[i]];
        if (cum_mid >= p.top_p) {
          hi = mid;
        } else {
          lo = mid;
          cum_lo = cum_mid;
        }
      }
      keep = hi;
    }
  }
  return keep;
}
}  // namespace

std::vector<int64_t> sampling_kept_ids(const torch::Tensor& logits, const SamplingParams& p) {
  auto l = logits.to(torch::kDouble).contiguous();  // [V]
  const double temperature = p.temperature > 0 ? p.temperature : 1.0;
  auto probs_t = torch::softmax(l / temperature, 0);
  std::vector<int64_t> order(static_cast<size_t>(l.size(0)));
  order.resize(static_cast<size_t>(partition_kept(probs_t.data_ptr<double>(), p, order)));
  std::sort(order.begin(), order.end());
  return order;
}

int64_t sample_token(const torch::Tensor& logits, const SamplingParams& p, uint64_t& rng_state) {
  auto l = logits.to(torch::kDouble).contiguous();  // [V]
  const int64_t V = l.size(0);
  if (p.temperature <= 0) return l.argmax().item<int64_t>();
  auto probs_t = torch::softmax(l / p.temperature, 0);
  const double* probs = probs_t.data_ptr<double>();
  // The draw walks the kept ids in ascending order, so the result depends on nothing but the
  // probabilities and the seed.
  std::vector<int64_t> order(static_cast<size_t>(V));
  const int64_t keep = partition_kept(probs, p, order);
  std::vector<char> kept;  // [V], empty when every token is kept
  if (keep < V) {
    kept.assign(V, 0);
    for (int64_t i = 0; i < keep; ++i) kept[order[i]] = 1;
  }
  double total = 0;
  for (int64_t t = 0; t < V; ++t)
    if (kept.empty() || kept[t]) total += probs[t];
  double u = uniform01(rng_state) * total;
  int64_t last = -1;
  for (int64_t t = 0; t < V; ++t) {
    if (!kept.empty() && !kept[t]) continue;
    last = t;
    u -= probs[t];
    if (u <= 0) return t;
  }
  return last;
}

std::vector<int64_t> generate(models::HookedTransformer& model, const std::vector<int64_t>& prompt,
                              const SamplingParams& params,
                              const std::vector<std::pair<std::string, models::HookFn>>& hooks) {
  torch::NoGradGuard ng;
  if (prompt.empty()) fail("generate: the prompt has no tokens");
  const int n_ctx = model->cfg().n_ctx;
  std::vector<int64_t> seq = prompt, out;
  uint64_t rng = params.seed;
  models::HookGuard guard(model);
  for (const auto& [name, fn] : hooks) guard.add(name, fn);
  for (int i = 0; i < params.max_new_tokens; ++i) {
    const size_t start = seq.size() > size_t(n_ctx) ? seq.size() - n_ctx : 0;
    std::vector<int64_t> window(seq.begin() + start, seq.end());
    auto tokens = torch::tensor(window, torch::kLong).unsqueeze(0);  // [1,T]
    auto logits = model->forward(tokens);                           // [1,T,V]
    int64_t next = sample_token(logits[0][-1], params, rng);
    seq.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::string actadd_hook_name(const models::ModelConfig& cfg, int layer) {
  if (layer < 0 || layer > cfg.n_layers)
    fail("steering layer " + std::to_string(layer) + " out of range (0.." + std::to_string(cfg.n_layers) + ")");
  if (cfg.n_layers == 0) fail("steering needs a model with at least one layer");
  if (layer == cfg.n_layers) return models::hooks::resid_post(layer - 1);
  return models::hooks::resid_pre(layer);
}

torch::Tensor actadd_vector(models::HookedTransformer& model, std::vector<int64_t> add, std::vector<int64_t> sub,
                            int layer, int64_t pad_id) {
  torch::NoGradGuard ng;
  const std::string name = actadd_hook_name(model->cfg(), layer);
  if (add.empty() || sub.empty()) fail("steering: prompt_add and prompt_sub must have at least one token");
  const size_t Ts = std::max(add.size(), sub.size());
  if (Ts > size_t(model->cfg().n_ctx)) fail("steering: prompt_add/prompt_sub longer than the model's context");
  add.resize(Ts, pad_id);
  sub.resize(Ts, pad_id);
  auto tokens = torch::stack({torch::tensor(add, torch::kLong), torch::tensor(sub, torch::kLong)});  // [2,Ts]
  auto [logits, cache] = models::run_with_cache(model, tokens, [&](const std::string& n) { return n == name; });
  const auto& resid = cache.at(name);  // [2,Ts,D]
  return (resid[0] - resid[1]).contiguous();  // [Ts,D]
}

models::HookFn steering_hook(torch::Tensor vector, double coefficient) {
  auto scaled = vector * coefficient;  // [Ts,D]
  return [scaled](const torch::Tensor& resid, const std::string&) {  // resid [B,T,D]
    const int64_t n = std::min(resid.size(1), scaled.size(0));
    auto out = resid.clone();
    out.slice(1, 0, n) += scaled.slice(0, 0, n).to(out.dtype());
    return std::optional<torch::Tensor>(out);
  };
}

}  // namespace circuitlab::analysis
