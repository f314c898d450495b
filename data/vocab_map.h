// Compact vocabulary (DESIGN.md contract 4): the N most frequent GPT-2 ids of a corpus plus
// one "other" id. Models trained compact speak compact ids; vocab_map.json maps them back so
// every table and figure shows real GPT-2 token strings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace circuitlab::data {

class VocabMap {
 public:
  VocabMap() = default;
  // gpt2_ids[c] = GPT-2 id of compact id c, for c < size()-1; the last compact id is "other".
  explicit VocabMap(std::vector<int32_t> gpt2_ids);

  int32_t size() const { return static_cast<int32_t>(to_gpt2_.size()) + 1; }  // incl. "other"
  int32_t other_id() const { return static_cast<int32_t>(to_gpt2_.size()); }
  int32_t to_compact(int32_t gpt2_id) const;  // other_id() when not in the map
  int32_t to_gpt2(int32_t compact_id) const;  // -1 for other_id(); Error when out of range
  const std::vector<int32_t>& gpt2_ids() const { return to_gpt2_; }

  // vocab_map.json: {"format": "circuitlab-vocab-map-v1", "d_vocab": N+1, "other_id": N,
  //                  "gpt2_ids": [...]}; Error naming the file/field when malformed.
  static VocabMap load(const std::string& path);
  void save(const std::string& path) const;  // atomic

 private:
  std::vector<int32_t> to_gpt2_;
  std::vector<int32_t> to_compact_;  // dense over GPT-2 ids, other_id() where absent
};

// The top-n compact vocabulary of a corpus: the n ids with the highest counts (ties broken
// by the smaller id; ids with count 0 fill up in id order so the map always has n + 1 ids).
// counts[id] over GPT-2 ids (extra entries beyond 50256 are ignored). Error when n is not in
// [1, 50257].
VocabMap build_top_n_vocab(const std::vector<uint64_t>& counts, int32_t n);

// Full-vocabulary scoring of a compact model, so that models with different vocabularies
// compare: a token outside the map is predicted as "other", then inside that bucket by its
// unigram share of the training counts, add-one smoothed over the GPT-2 ids outside the map
// (an id never seen in training still costs a finite amount). Per token, in nats:
//   full = compact + (target is "other" ? −log((count[id] + 1) / (Σ_other count + n_other)) : 0).
class OtherBucketUnigram {
 public:
  // counts[id] over GPT-2 ids (training split).
  OtherBucketUnigram(const VocabMap& map, const std::vector<uint64_t>& counts);
  // The extra nats of GPT-2 id `gpt2_id` (0 when it is inside the map).
  double nats(int32_t gpt2_id) const;

 private:
  std::vector<double> nats_;  // per GPT-2 id; 0 inside the map
};

// token_counts.json, written by `circuitlab prepare` next to train.bin:
//   {"format": "circuitlab-token-counts-v1", "split": "train", "tokens": N, "counts": [50257 ints]}
void save_token_counts(const std::string& path, const std::vector<uint64_t>& counts,
                       const std::string& split = "train");
std::vector<uint64_t> load_token_counts(const std::string& path);  // size 50257

}  // namespace circuitlab::data
