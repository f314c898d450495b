// Skip-trigram tables and the bug finder (see skip_trigrams.h).
#include "analysis/skip_trigrams.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace circuitlab::analysis {

namespace {
std::vector<double> to_vec(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
std::vector<std::pair<int64_t, double>> top(const std::vector<double>& v, int k, const std::set<int64_t>& excl) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i)
    if (!excl.count(i)) idx.push_back(i);
  k = std::min<int>(k, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  std::vector<std::pair<int64_t, double>> out;
  for (int i = 0; i < k; ++i) out.emplace_back(idx[i], v[idx[i]]);
  return out;
}
}  // namespace

std::vector<double> qk_destinations(const CircuitWeights& w, int layer, int head, int64_t source) {
  torch::NoGradGuard ng;
  const int i = w.idx(layer, head);
  torch::Tensor E = w.W_E.to(torch::kFloat64);                          // [V, D]
  torch::Tensor key = torch::matmul(E[source], w.stacked.K[i]);      // [Dh]
  torch::Tensor q = torch::matmul(E, w.stacked.Q[i]);                // [V, Dh]
  return to_vec(torch::matmul(q, key) / std::sqrt(static_cast<double>(w.Dh)));  // [V]
}

std::vector<double> ov_outputs(const CircuitWeights& w, int layer, int head, int64_t source) {
  torch::NoGradGuard ng;
  const int i = w.idx(layer, head);
  torch::Tensor e = w.W_E[source].to(torch::kFloat64);                    // [D]
  torch::Tensor o = torch::matmul(torch::matmul(e, w.stacked.V[i]), w.stacked.O[i]);  // [D]
  return to_vec(torch::matmul(o, w.W_U_folded().to(torch::kFloat64)));   // [V_out]
}

std::vector<SkipTrigramHead> skip_trigrams(const CircuitWeights& w, const std::vector<int64_t>& sources, int top_k,
                                           const std::vector<int64_t>& excluded) {
  torch::NoGradGuard ng;
  std::set<int64_t> excl(excluded.begin(), excluded.end());
  std::vector<SkipTrigramHead> out;
  if (sources.empty()) return out;
  torch::Tensor E = w.W_E.to(torch::kFloat64);                              // [V, D]
  torch::Tensor Es = E.index_select(0, torch::tensor(sources, torch::kInt64));  // [S, D]
  torch::Tensor U = w.W_U_folded().to(torch::kFloat64);                      // [D, V_out]
  for (int l = 0; l < w.L; ++l)
    for (int h = 0; h < w.H; ++h) {
      const int i = w.idx(l, h);
      // Same numbers as qk_destinations / ov_outputs, batched over the sources.
      torch::Tensor qk = torch::matmul(torch::matmul(E, w.stacked.Q[i]),
                                       torch::matmul(Es, w.stacked.K[i]).t()) /
                         std::sqrt(static_cast<double>(w.Dh));              // [V, S]
      torch::Tensor ov = torch::matmul(torch::matmul(torch::matmul(Es, w.stacked.V[i]), w.stacked.O[i]), U);  // [S, V_out]
      SkipTrigramHead sh;
      sh.layer = l;
      sh.head = h;
      for (size_t j = 0; j < sources.size(); ++j) {
        SkipTrigramEntry e;
        e.source = sources[j];
        e.destinations = top(to_vec(qk.select(1, j)), top_k, excl);
        e.outputs = top(to_vec(ov[j]), top_k, excl);
        sh.entries.push_back(std::move(e));
      }
      out.push_back(std::move(sh));
    }
  return out;
}

std::vector<SkipTrigramBug> skip_trigram_bugs(const CircuitWeights& w, const std::vector<SkipTrigramHead>& heads,
                                              const BigramCounts& counts, double plausible, double implausible,
                                              size_t max_bugs) {
  (void)w;
  // P(o | d) from the corpus bigram counts; -1 when d's row was not counted.
  auto prob = [&](int64_t d, int64_t o) -> double {
    auto it = counts.next.find(d);
    if (it == counts.next.end()) return -1;
    uint64_t tot = 0, c = 0;
    for (auto& kv : it->second) {
      tot += kv.second;
      if (kv.first == o) c = kv.second;
    }
    return tot ? double(c) / tot : -1;
  };
  std::vector<std::pair<double, SkipTrigramBug>> found;
  for (const auto& sh : heads)
    for (const auto& e : sh.entries) {
      const size_t nd = std::min<size_t>(5, e.destinations.size()), no = std::min<size_t>(5, e.outputs.size());
      struct Tri { size_t d, o; double p; };
      std::vector<Tri> good;
      for (size_t d = 0; d < nd; ++d)
        for (size_t o = 0; o < no; ++o) {
          double p = prob(e.destinations[d].first, e.outputs[o].first);
          if (p >= plausible && e.destinations[d].second > 0 && e.outputs[o].second > 0) good.push_back({d, o, p});
        }
      for (size_t a = 0; a < good.size(); ++a)
        for (size_t b = a + 1; b < good.size(); ++b) {
          const Tri &A = good[a], &B = good[b];
          if (A.d == B.d || A.o == B.o) continue;
          SkipTrigramBug bug;
          bug.layer = sh.layer;
          bug.head = sh.head;
          bug.source = e.source;
          bug.dest_a = e.destinations[A.d].first;
          bug.out_a = e.outputs[A.o].first;
          bug.dest_b = e.destinations[B.d].first;
          bug.out_b = e.outputs[B.o].first;
          bug.prob_a = A.p;
          bug.prob_b = B.p;
          for (auto [d, o] : {std::pair<size_t, size_t>{A.d, B.o}, {B.d, A.o}}) {
            double p = prob(e.destinations[d].first, e.outputs[o].first);
            if (p >= 0 && p < implausible)
              bug.crossed.push_back({e.destinations[d].first, e.outputs[o].first, p,
                                     e.destinations[d].second * e.outputs[o].second});
          }
          if (bug.crossed.empty()) continue;
          const double strength = std::min(e.destinations[A.d].second * e.outputs[A.o].second,
                                           e.destinations[B.d].second * e.outputs[B.o].second);
          found.emplace_back(strength, bug);
        }
    }
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<SkipTrigramBug> out;
  for (size_t i = 0; i < found.size() && out.size() < max_bugs; ++i) out.push_back(found[i].second);
  return out;
}

}  // namespace circuitlab::analysis
