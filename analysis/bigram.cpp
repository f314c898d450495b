// Direct-path bigram table vs corpus bigrams (see bigram.h).
#include "analysis/bigram.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace circuitlab::analysis {

BigramCounts count_bigrams(const data::TokenShard& shard, const std::optional<data::VocabMap>& vmap, int d_vocab,
                           int max_sources, uint64_t max_tokens) {
  BigramCounts c;
  c.unigram.assign(d_vocab, 0);
  const uint64_t n = std::min<uint64_t>(shard.size(), max_tokens);
  auto id = [&](uint64_t i) -> int64_t {
    int64_t t = shard[i];
    return vmap ? vmap->to_compact(static_cast<int32_t>(t)) : t;
  };
  for (uint64_t i = 0; i < n; ++i) {
    int64_t t = id(i);
    if (t >= d_vocab) fail(shard.path() + ": token id " + std::to_string(t) + " is outside the model's vocabulary");
    ++c.unigram[t];
  }
  std::vector<int64_t> order(d_vocab);
  for (int64_t i = 0; i < d_vocab; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return c.unigram[a] > c.unigram[b]; });
  std::vector<char> tracked(d_vocab, 0);
  for (int i = 0; i < std::min<int>(max_sources, d_vocab); ++i)
    if (c.unigram[order[i]] > 0) tracked[order[i]] = 1;
  for (uint64_t i = 0; i + 1 < n; ++i) {
    int64_t a = id(i);
    if (tracked[a]) ++c.next[a][id(i + 1)];
  }
  c.tokens_counted = n;
  return c;
}

torch::Tensor direct_path_logits(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd,
                                 const std::vector<int64_t>& tokens) {
  torch::NoGradGuard ng;
  auto get = [&](const std::string& k) {
    auto it = sd.find(k);
    if (it == sd.end()) fail("model weights: tensor '" + k + "' is missing");
    return it->second.detach().to(torch::kFloat64);
  };
  torch::Tensor W_E = get("embed.W_E");
  torch::Tensor x = W_E.index_select(0, torch::tensor(tokens, torch::kInt64));  // [n, D]
  if (cfg.has_ln())
    x = torch::layer_norm(x, {cfg.d_model}, get("ln_final.w"),
                          sd.count("ln_final.b") ? get("ln_final.b") : torch::Tensor(), cfg.eps);
  const bool tied = !sd.count("unembed.W_U");
  torch::Tensor logits = tied ? torch::matmul(x, W_E.t()) : torch::matmul(x, get("unembed.W_U"));
  if (sd.count("unembed.b_U")) logits = logits + get("unembed.b_U");
  return logits;  // [n, V_out]
}

BigramTable bigram_table(const models::ModelConfig& cfg, const std::map<std::string, torch::Tensor>& sd,
                         const BigramCounts* counts, const std::vector<int64_t>& usable, int n_rows, int top_k,
                         int min_count) {
  torch::NoGradGuard ng;
  BigramTable t;
  t.source = cfg.n_layers == 0 ? "zero_layer_model" : "direct_path";
  t.top_k = top_k;
  std::vector<int64_t> rows;
  std::vector<int64_t> compared;
  if (counts) {
    std::vector<int64_t> by = usable;
    std::stable_sort(by.begin(), by.end(), [&](int64_t a, int64_t b) { return counts->unigram[a] > counts->unigram[b]; });
    for (int64_t s : by) {
      if (static_cast<int>(rows.size()) < n_rows && counts->next.count(s)) rows.push_back(s);
      auto it = counts->next.find(s);
      if (it == counts->next.end()) continue;
      uint64_t tot = 0;
      for (auto& kv : it->second) tot += kv.second;
      if (tot >= static_cast<uint64_t>(min_count)) compared.push_back(s);
    }
    t.tokens_counted = counts->tokens_counted;
  } else {
    for (size_t i = 0; i < usable.size() && static_cast<int>(rows.size()) < n_rows; ++i) rows.push_back(usable[i]);
  }
  // Model log-probs for rows ∪ compared, in chunks of 512 sources.
  std::vector<int64_t> all = rows;
  all.insert(all.end(), compared.begin(), compared.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  std::map<int64_t, BigramRow> made;
  double agree = 0, kl = 0, wsum = 0;
  for (size_t start = 0; start < all.size(); start += 512) {
    std::vector<int64_t> chunk(all.begin() + start, all.begin() + std::min(all.size(), start + 512));
    torch::Tensor lp = torch::log_softmax(direct_path_logits(cfg, sd, chunk), -1);  // [n, V_out]
    auto topk = lp.topk(top_k, -1);
    torch::Tensor vals = std::get<0>(topk).contiguous(), idx = std::get<1>(topk).contiguous();
    torch::Tensor argmax = lp.argmax(-1);
    for (size_t i = 0; i < chunk.size(); ++i) {
      const int64_t s = chunk[i];
      BigramRow r;
      r.token = s;
      for (int k = 0; k < top_k; ++k) r.model_top.emplace_back(idx[i][k].item<int64_t>(), vals[i][k].item<double>());
      if (counts) {
        r.corpus_count = 0;
        auto it = counts->next.find(s);
        if (it != counts->next.end()) {
          std::vector<std::pair<int64_t, uint64_t>> nx(it->second.begin(), it->second.end());
          uint64_t tot = 0;
          for (auto& kv : nx) tot += kv.second;
          r.corpus_count = tot;
          std::sort(nx.begin(), nx.end(), [](auto a, auto b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
          std::vector<std::pair<int64_t, double>> ct;
          for (size_t k = 0; k < nx.size() && static_cast<int>(k) < top_k; ++k)
            ct.emplace_back(nx[k].first, double(nx[k].second) / tot);
          r.corpus_top = ct;
          if (tot >= static_cast<uint64_t>(min_count)) {
            const double w = static_cast<double>(tot);
            agree += (argmax[i].item<int64_t>() == nx[0].first ? 1.0 : 0.0);
            double k_s = 0;
            torch::Tensor row = lp[i].contiguous();
            const double* p = row.data_ptr<double>();
            for (auto& kv : nx) {
              const double pc = double(kv.second) / tot;
              k_s += pc * (std::log(pc) - p[kv.first]);
            }
            kl += w * k_s;
            wsum += w;
          }
        } else {
          r.corpus_top = std::vector<std::pair<int64_t, double>>{};
        }
      }
      made[s] = r;
    }
  }
  for (int64_t s : rows) t.rows.push_back(made.at(s));
  if (counts) {
    t.n_sources_compared = static_cast<int64_t>(compared.size());
    if (!compared.empty()) {
      t.top1_agreement = agree / compared.size();
      t.kl_corpus_model = kl / wsum;
    }
  }
  return t;
}

}  // namespace circuitlab::analysis
