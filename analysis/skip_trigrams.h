// Skip-trigrams of one-layer models (paper §"Interpretation as Skip-Trigrams"): per head and
// source token, the destinations whose QK entry (query = destination, key = source) is largest
// and the outputs whose OV entry is largest, read as "source … destination → out"; plus the
// finder for skip-trigram bugs (§"Skip-Trigram Bugs": f(a,b,c) = f1(a,b)·f2(a,c), so two good
// trigrams of one source force their crossed combinations). Rows of the V×V circuits are
// computed one source at a time from folded weights; the V×V matrices never exist.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/bigram.h"
#include "analysis/circuit_weights.h"

namespace circuitlab::analysis {

struct SkipTrigramEntry {
  int64_t source = 0;
  std::vector<std::pair<int64_t, double>> destinations;  // (id, QK score ÷ √Dh), descending
  std::vector<std::pair<int64_t, double>> outputs;       // (id, OV logit), descending
};
struct SkipTrigramHead {
  int layer = 0, head = 0;
  std::vector<SkipTrigramEntry> entries;
};
struct SkipTrigramBug {
  int layer = 0, head = 0;
  int64_t source = 0;
  int64_t dest_a = 0, out_a = 0, dest_b = 0, out_b = 0;
  double prob_a = 0, prob_b = 0;
  struct Crossed {
    int64_t dest = 0, out = 0;
    double prob = 0, boost = 0;
  };
  std::vector<Crossed> crossed;
};

// QK row over destinations for one (head, source): [V] and OV row over outputs: [V_out].
std::vector<double> qk_destinations(const CircuitWeights& w, int layer, int head, int64_t source);
std::vector<double> ov_outputs(const CircuitWeights& w, int layer, int head, int64_t source);

std::vector<SkipTrigramHead> skip_trigrams(const CircuitWeights& w, const std::vector<int64_t>& sources, int top_k,
                                           const std::vector<int64_t>& excluded_ids);

// Bugs: for each head and source, pairs (d1,o1), (d2,o2) among its top destinations/outputs
// with corpus P(o|d) ≥ plausible whose crossed (d1,o2) or (d2,o1) has P < implausible (and
// d's bigram row counted). Sorted by the weaker boost of the two trigrams, at most max_bugs.
std::vector<SkipTrigramBug> skip_trigram_bugs(const CircuitWeights& w, const std::vector<SkipTrigramHead>& heads,
                                              const BigramCounts& counts, double plausible = 1e-2,
                                              double implausible = 1e-4, size_t max_bugs = 20);

}  // namespace circuitlab::analysis
