// Token shards (DESIGN.md contract 3): memory-mapped nanoGPT `.bin` files (raw little-endian
// uint16, no header) and llm.c shards (int32[256] header: magic 20240520, version 1, token
// count; then uint16 tokens), told apart by content; plus streaming writers for both.
// Not a sampler (see data/batches.h) and free of LibTorch: a shard is a view of bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/file_io.h"

namespace circuitlab::data {

constexpr int32_t kLlmcMagic = 20240520;       // llm.c GPT-2 token shard
constexpr int32_t kLlmcVersion = 1;
constexpr int32_t kLlmcMagicLlama3 = 20240801;  // llm.c uint32 shards: recognised, rejected
constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);

enum class ShardFormat { Auto, NanoGPT, LlmC };
const char* shard_format_name(ShardFormat f);

// A read-only, memory-mapped token shard. Auto detection: a file whose first int32 is the
// llm.c magic is an llm.c shard (version and size are then checked, Error on mismatch); a
// file whose int32 header has version 1, zero padding and a token count matching its size
// but another magic is rejected as "bad magic"; anything else is a nanoGPT .bin (even size
// required). Errors name the file and the problem.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path, ShardFormat expect = ShardFormat::Auto);
  TokenShard(TokenShard&&) noexcept = default;
  TokenShard& operator=(TokenShard&&) noexcept = default;

  size_t size() const { return n_; }  // number of tokens
  bool empty() const { return n_ == 0; }
  // Token i (little-endian uint16 on disk; this project builds for little-endian hosts only).
  uint16_t operator[](size_t i) const { return toks_[i]; }
  const uint16_t* tokens() const { return toks_; }  // [n], points into the mapping
  ShardFormat format() const { return format_; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  const uint16_t* toks_ = nullptr;
  size_t n_ = 0;
  ShardFormat format_ = ShardFormat::NanoGPT;
};

// Streams uint16 tokens to `path` through AtomicFile (nothing appears at `path` until
// commit()). NanoGPT: raw tokens. LlmC: a placeholder header, patched with the final count at
// commit() (the file is rewritten through the temp path, so it stays atomic).
class ShardWriter {
 public:
  explicit ShardWriter(const std::string& path, ShardFormat format = ShardFormat::NanoGPT);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Error when an id does not fit in uint16 (GPT-2 ids are < 50257).
  void append(const int32_t* ids, size_t n);
  void append(const std::vector<int32_t>& ids) { append(ids.data(), ids.size()); }
  void commit();
  uint64_t tokens_written() const { return count_; }
  const std::string& path() const { return path_; }

 private:
  void flush();
  std::string path_;
  ShardFormat format_;
  std::unique_ptr<AtomicFile> file_;
  std::vector<uint16_t> buf_;
  uint64_t count_ = 0;
};

// One-shot writers (tests, tools).
void write_nanogpt_shard(const std::string& path, const std::vector<int32_t>& ids);
void write_llmc_shard(const std::string& path, const std::vector<int32_t>& ids);

// Occurrences of each token id in a shard: counts[id], size 65536 (every uint16).
std::vector<uint64_t> count_tokens(const TokenShard& shard);

}  // namespace circuitlab::data
