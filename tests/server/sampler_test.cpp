// Unit tests of the lab's sampler (analysis/steering.h sample_token, sampling_kept_ids): top-k
// and top-p keep exactly the tokens a plain sort of the whole vocabulary would keep, every draw
// comes from that set, ties go to the lower id, greedy is the argmax, and the same seed gives
// the same draws.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "analysis/steering.h"

namespace circuitlab::analysis {
namespace {

// The plain reference: every id sorted by probability (ties by id), then truncated.
std::set<int64_t> reference_kept(const torch::Tensor& logits, int top_k, double top_p) {
  auto probs = torch::softmax(logits.to(torch::kDouble), 0);
  const double* pr = probs.data_ptr<double>();
  std::vector<int64_t> order(logits.size(0));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pr[a] != pr[b] ? pr[a] > pr[b] : a < b; });
  size_t keep = top_k > 0 ? std::min<size_t>(order.size(), top_k) : order.size();
  double cum = 0;
  for (size_t i = 0; i < keep && top_p < 1.0; ++i)
    if ((cum += pr[order[i]]) >= top_p) keep = i + 1;
  return {order.begin(), order.begin() + keep};
}

std::set<int64_t> drawn(const torch::Tensor& logits, const SamplingParams& p, int n) {
  std::set<int64_t> seen;
  uint64_t state = 7;
  for (int i = 0; i < n; ++i) seen.insert(sample_token(logits, p, state));
  return seen;
}

TEST(Sampler, TopKAndTopPKeepWhatAFullSortKeeps) {
  torch::manual_seed(5);
  const torch::Tensor logits = torch::randn({5000}) * 3;  // [V]; wide enough for several sort blocks
  for (auto [k, top_p] : std::vector<std::pair<int, double>>{{3, 1.0}, {300, 1.0}, {0, 0.5}, {0, 0.95}, {40, 0.9}}) {
    SamplingParams p;
    p.top_k = k;
    p.top_p = top_p;
    const auto kept = reference_kept(logits, k, top_p);
    const auto ids = sampling_kept_ids(logits, p);
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()), kept) << "top_k " << k << " top_p " << top_p;
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    const auto seen = drawn(logits, p, 4000);
    for (int64_t t : seen) EXPECT_TRUE(kept.count(t)) << "top_k " << k << " top_p " << top_p << " drew " << t;
    if (kept.size() <= 3) EXPECT_EQ(seen, kept) << "top_k " << k << ": 4000 draws should reach every kept token";
  }
}

TEST(Sampler, TopPKeepsExactlyTheSmallestNucleus) {
  torch::manual_seed(8);
  torch::Tensor logits = torch::randn({5000});  // [V]: three dominant tokens hold ~97% of the mass
  logits[10] = 12.0;
  logits[20] = 11.5;
  logits[30] = 11.0;
  for (double top_p : {0.3, 0.7, 0.9}) {
    SamplingParams p;
    p.top_p = top_p;
    const auto kept = reference_kept(logits, 0, top_p);
    ASSERT_LE(kept.size(), 3u);
    const auto ids = sampling_kept_ids(logits, p);
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()), kept) << "top_p " << top_p;
    EXPECT_EQ(drawn(logits, p, 4000), kept) << "top_p " << top_p;
  }
}

TEST(Sampler, TiesGoToTheLowerIdAndGreedyIsTheArgmax) {
  const torch::Tensor flat = torch::zeros({10});  // [V], every token equally likely
  SamplingParams p;
  p.top_k = 2;
  EXPECT_EQ(sampling_kept_ids(flat, p), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(drawn(flat, p, 500), (std::set<int64_t>{0, 1}));
  torch::Tensor peaked = torch::zeros({10});
  peaked[6] = 4.0;
  p.temperature = 0;
  uint64_t s = 0;
  EXPECT_EQ(sample_token(peaked, p, s), 6);
}

TEST(Sampler, SameSeedSameDraws) {
  torch::manual_seed(6);
  const torch::Tensor logits = torch::randn({1000});
  SamplingParams p;
  p.top_p = 0.8;
  uint64_t a = 42, b = 42;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, p, a), sample_token(logits, p, b));
}

}  // namespace
}  // namespace circuitlab::analysis
