// The bigram table (analysis/bigram.h) against bigrams counted by hand: count_bigrams on a real
// shard written in the test equals a plain count of adjacent pairs (and tracks only the most
// frequent sources), and bigram_table's corpus rows, model rows (a zero-layer model whose
// direct path W_E·W_U is a planted log-probability table), top-1 agreement and
// KL(corpus ‖ model) equal the same quantities computed here from those counts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "analysis/bigram.h"
#include "data/shards.h"
#include "planted_model.h"
#include "tests/common/all_close.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::analysis {
namespace {

constexpr int kV = 12;
using Row = std::map<int64_t, uint64_t>;  // next -> count
using Counts = std::map<int64_t, Row>;     // source -> next -> count

// A Markov chain over kV ids with a preferred successor per id (and a skewed start): text
// with clear bigrams, unequal unigram frequencies, and rare ids.
std::vector<int32_t> markov_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int32_t> t{0};
  while (t.size() < n) {
    const int32_t a = t.back();
    const double r = u(rng);
    t.push_back(r < 0.6 ? (a * 5 + 1) % (kV - 2) : r < 0.9 ? (a + 2) % (kV - 2) : static_cast<int32_t>(rng() % kV));
  }
  return t;
}

Counts count_by_hand(const std::vector<int32_t>& t) {
  Counts c;
  for (size_t i = 0; i + 1 < t.size(); ++i) ++c[t[i]][t[i + 1]];
  return c;
}

TEST(Bigram, CountsEqualAPlainCountOfAdjacentPairs) {
  circuitlab::testing::TempDir dir("bigram");
  const auto toks = markov_tokens(5000, 1);
  data::write_nanogpt_shard(dir / "train.bin", toks);
  data::TokenShard shard(dir / "train.bin");
  const Counts hand = count_by_hand(toks);
  std::vector<uint64_t> uni(kV, 0);
  for (int32_t t : toks) ++uni[t];

  const BigramCounts all = count_bigrams(shard, std::nullopt, kV, /*max_sources=*/kV, /*max_tokens=*/1 << 20);
  EXPECT_EQ(all.tokens_counted, toks.size());
  EXPECT_EQ(all.unigram, uni);
  ASSERT_EQ(all.next.size(), hand.size());
  for (const auto& [a, row] : hand) {
    ASSERT_TRUE(all.next.count(a)) << "source " << a;
    const auto& got = all.next.at(a);
    EXPECT_EQ(Row(got.begin(), got.end()), row) << "source " << a;
  }

  // Only the 3 most frequent sources are tracked; a token budget counts a prefix.
  const BigramCounts top3 = count_bigrams(shard, std::nullopt, kV, 3, 1 << 20);
  std::vector<int64_t> by(kV);
  for (int i = 0; i < kV; ++i) by[i] = i;
  std::stable_sort(by.begin(), by.end(), [&](int64_t a, int64_t b) { return uni[a] > uni[b]; });
  ASSERT_EQ(top3.next.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(top3.next.count(by[i])) << "rank " << i << " id " << by[i];
  const BigramCounts prefix = count_bigrams(shard, std::nullopt, kV, kV, 1000);
  const Counts hand_prefix = count_by_hand(std::vector<int32_t>(toks.begin(), toks.begin() + 1000));
  EXPECT_EQ(prefix.tokens_counted, 1000u);
  for (const auto& [a, row] : hand_prefix) {
    const auto& got = prefix.next.at(a);
    EXPECT_EQ(Row(got.begin(), got.end()), row) << "prefix source " << a;
  }
}

TEST(Bigram, TableAgreesWithCountedBigramsAndThePlantedDirectPath) {
  circuitlab::testing::TempDir dir("bigram-table");
  const auto toks = markov_tokens(8000, 2);
  data::write_nanogpt_shard(dir / "train.bin", toks);
  data::TokenShard shard(dir / "train.bin");
  const BigramCounts counts = count_bigrams(shard, std::nullopt, kV, kV, 1 << 20);
  const Counts hand = count_by_hand(toks);

  // Zero-layer model: W_E = I, W_U = a log-probability table M (row a: log P_model(· | a)),
  // which prefers (a + 2) for even a (disagreeing with the corpus's 5a + 1) and 5a + 1 for odd a.
  models::ModelConfig cfg = testing::planted_config();  // no LN, no biases
  cfg.n_layers = 0;
  cfg.d_vocab = kV;
  cfg.d_model = kV;
  cfg.n_ctx = 8;
  torch::manual_seed(4);
  torch::Tensor M = torch::randn({kV, kV}, torch::kFloat64);
  for (int a = 0; a < kV; ++a) M[a][a % 2 == 0 ? (a + 2) % (kV - 2) : (a * 5 + 1) % (kV - 2)] += 4.0;
  M = torch::log_softmax(M, 1);
  const std::map<std::string, torch::Tensor> sd{{"embed.W_E", torch::eye(kV, torch::kFloat64)},
                                                {"pos_embed.W_pos", torch::zeros({8, kV}, torch::kFloat64)},
                                                {"unembed.W_U", M}};
  std::vector<int64_t> usable(kV);
  for (int i = 0; i < kV; ++i) usable[i] = i;
  const int top_k = 3, min_count = 20;
  const BigramTable t = bigram_table(cfg, sd, &counts, usable, /*n_rows=*/kV, top_k, min_count);
  EXPECT_EQ(t.source, "zero_layer_model");
  ASSERT_TRUE(t.tokens_counted.has_value());
  EXPECT_EQ(*t.tokens_counted, toks.size());

  double agree = 0, kl = 0, wsum = 0;
  int64_t compared = 0;
  for (const BigramRow& r : t.rows) {
    SCOPED_TRACE("row " + std::to_string(r.token));
    const auto& row = hand.at(r.token);
    uint64_t tot = 0;
    for (const auto& [b, n] : row) tot += n;
    ASSERT_TRUE(r.corpus_count.has_value());
    EXPECT_EQ(*r.corpus_count, tot);
    // Corpus top-k: by count, ties by lower id, as probabilities.
    std::vector<std::pair<int64_t, uint64_t>> nx(row.begin(), row.end());
    std::stable_sort(nx.begin(), nx.end(), [](auto a, auto b) { return a.second > b.second; });
    ASSERT_TRUE(r.corpus_top.has_value());
    ASSERT_EQ(r.corpus_top->size(), std::min<size_t>(top_k, nx.size()));
    for (size_t k = 0; k < r.corpus_top->size(); ++k) {
      EXPECT_EQ((*r.corpus_top)[k].first, nx[k].first);
      EXPECT_DOUBLE_EQ((*r.corpus_top)[k].second, double(nx[k].second) / tot);
    }
    // Model top-k: the planted row of M, descending.
    const torch::Tensor lp = M[r.token];
    const auto order = std::get<1>(lp.topk(top_k));
    ASSERT_EQ(r.model_top.size(), size_t(top_k));
    for (int k = 0; k < top_k; ++k) {
      EXPECT_EQ(r.model_top[k].first, order[k].item<int64_t>());
      EXPECT_NEAR(r.model_top[k].second, lp[r.model_top[k].first].item<double>(), 1e-9);
    }
    if (tot < static_cast<uint64_t>(min_count)) continue;
    ++compared;
    agree += lp.argmax().item<int64_t>() == nx[0].first ? 1.0 : 0.0;
    double k_s = 0;
    for (const auto& [b, n] : row) {
      const double pc = double(n) / tot;
      k_s += pc * (std::log(pc) - lp[b].item<double>());
    }
    kl += static_cast<double>(tot) * k_s;
    wsum += static_cast<double>(tot);
  }
  ASSERT_GT(compared, 4) << "the corpus should give most ids enough counts";
  ASSERT_TRUE(t.n_sources_compared.has_value() && t.top1_agreement.has_value() && t.kl_corpus_model.has_value());
  EXPECT_EQ(*t.n_sources_compared, compared);
  EXPECT_NEAR(*t.top1_agreement, agree / compared, 1e-12);
  EXPECT_GT(*t.top1_agreement, 0.2);  // the odd ids agree,
  EXPECT_LT(*t.top1_agreement, 0.8);  // the even ones do not
  EXPECT_NEAR(*t.kl_corpus_model, kl / wsum, 1e-9 * std::abs(kl / wsum) + 1e-12);
}

}  // namespace
}  // namespace circuitlab::analysis
