// Compact vocabulary maps and token-count files (see vocab_map.h).
#include "data/vocab_map.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::data {

namespace {
constexpr int32_t kGpt2Vocab = 50257;
constexpr const char* kVocabFormat = "circuitlab-vocab-map-v1";
constexpr const char* kCountsFormat = "circuitlab-token-counts-v1";
}  // namespace

VocabMap::VocabMap(std::vector<int32_t> gpt2_ids) : to_gpt2_(std::move(gpt2_ids)) {
  to_compact_.assign(65536, other_id());
  for (size_t c = 0; c < to_gpt2_.size(); ++c) {
    int32_t g = to_gpt2_[c];
    if (g < 0 || g >= kGpt2Vocab)
      fail("vocab map: GPT-2 id " + std::to_string(g) + " at compact id " + std::to_string(c) +
           " is outside [0, 50257)");
    if (to_compact_[g] != other_id())
      fail("vocab map: GPT-2 id " + std::to_string(g) + " appears twice (compact ids " +
           std::to_string(to_compact_[g]) + " and " + std::to_string(c) + ")");
    to_compact_[g] = static_cast<int32_t>(c);
  }
}

int32_t VocabMap::to_compact(int32_t gpt2_id) const {
  if (gpt2_id < 0 || static_cast<size_t>(gpt2_id) >= to_compact_.size()) return other_id();
  return to_compact_[gpt2_id];
}

int32_t VocabMap::to_gpt2(int32_t compact_id) const {
  if (compact_id == other_id()) return -1;
  if (compact_id < 0 || compact_id > other_id())
    fail("vocab map: compact id " + std::to_string(compact_id) + " outside [0, " +
         std::to_string(size()) + ")");
  return to_gpt2_[compact_id];
}

VocabMap VocabMap::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) fail(path + ": expected a JSON object");
  if (!j.contains("format") || j["format"] != kVocabFormat)
    fail(path + ": field \"format\" must be \"" + std::string(kVocabFormat) + "\"");
  if (!j.contains("gpt2_ids") || !j["gpt2_ids"].is_array())
    fail(path + ": field \"gpt2_ids\" must be an array of GPT-2 ids");
  std::vector<int32_t> ids;
  ids.reserve(j["gpt2_ids"].size());
  for (const auto& v : j["gpt2_ids"]) {
    if (!v.is_number_integer()) fail(path + ": field \"gpt2_ids\" must hold integers");
    ids.push_back(v.get<int32_t>());
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  if (!j.contains("d_vocab") || !j["d_vocab"].is_number_integer() || j["d_vocab"].get<int64_t>() != n + 1)
    fail(path + ": field \"d_vocab\" must equal len(gpt2_ids) + 1 = " + std::to_string(n + 1));
  if (!j.contains("other_id") || !j["other_id"].is_number_integer() || j["other_id"].get<int64_t>() != n)
    fail(path + ": field \"other_id\" must equal len(gpt2_ids) = " + std::to_string(n));
  try {
    return VocabMap(std::move(ids));
  } catch (const Error& e) {
    fail(path + ": " + e.what());
  }
}

void VocabMap::save(const std::string& path) const {
  nlohmann::json j;
  j["format"] = kVocabFormat;
  j["d_vocab"] = size();
  j["other_id"] = other_id();
  j["gpt2_ids"] = to_gpt2_;
  write_file_atomic(path, j.dump() + "\n");
}

VocabMap build_top_n_vocab(const std::vector<uint64_t>& counts, int32_t n) {
  if (n < 1 || n > kGpt2Vocab)
    fail("compact vocabulary size " + std::to_string(n) + " outside [1, 50257]");
  std::vector<int32_t> ids(kGpt2Vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto count = [&](int32_t id) -> uint64_t {
    return static_cast<size_t>(id) < counts.size() ? counts[id] : 0;
  };
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return count(a) > count(b); });
  ids.resize(n);
  return VocabMap(std::move(ids));
}

OtherBucketUnigram::OtherBucketUnigram(const VocabMap& map, const std::vector<uint64_t>& counts)
    : nats_(kGpt2Vocab, 0.0) {
  auto count = [&](int32_t id) -> double {
    return static_cast<size_t>(id) < counts.size() ? static_cast<double>(counts[id]) : 0.0;
  };
  double total = 0, n_other = 0;
  for (int32_t id = 0; id < kGpt2Vocab; ++id)
    if (map.to_compact(id) == map.other_id()) {
      total += count(id);
      n_other += 1;
    }
  for (int32_t id = 0; id < kGpt2Vocab; ++id)
    if (map.to_compact(id) == map.other_id()) nats_[id] = -std::log((count(id) + 1.0) / (total + n_other));
}

double OtherBucketUnigram::nats(int32_t gpt2_id) const {
  if (gpt2_id < 0 || gpt2_id >= kGpt2Vocab)
    fail("token id " + std::to_string(gpt2_id) + " is outside the GPT-2 vocabulary");
  return nats_[gpt2_id];
}

void save_token_counts(const std::string& path, const std::vector<uint64_t>& counts,
                       const std::string& split) {
  std::vector<uint64_t> c(kGpt2Vocab, 0);
  uint64_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i < c.size())
      c[i] = counts[i];
    else if (counts[i] != 0)
      fail(path + ": token id " + std::to_string(i) + " is outside the GPT-2 vocabulary");
    total += counts[i];
  }
  nlohmann::json j;
  j["format"] = kCountsFormat;
  j["split"] = split;
  j["tokens"] = total;
  j["counts"] = c;
  write_file_atomic(path, j.dump() + "\n");
}

std::vector<uint64_t> load_token_counts(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("format") || j["format"] != kCountsFormat)
    fail(path + ": field \"format\" must be \"" + std::string(kCountsFormat) + "\"");
  if (!j.contains("counts") || !j["counts"].is_array() || j["counts"].size() != kGpt2Vocab)
    fail(path + ": field \"counts\" must be an array of 50257 integers");
  std::vector<uint64_t> c;
  c.reserve(kGpt2Vocab);
  for (const auto& v : j["counts"]) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      fail(path + ": field \"counts\" must hold non-negative integers");
    c.push_back(v.get<uint64_t>());
  }
  return c;
}

}  // namespace circuitlab::data
