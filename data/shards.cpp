// Token shard reader and writers (see shards.h). Formats: nanoGPT data/openwebtext/prepare.py
// (uint16 array, no header) and llm.c dev/data/data_common.py write_datafile (int32[256]
// header, magic 20240520, version 1, header[2] = token count, then uint16 tokens).
#include "data/shards.h"

#include <cstring>

#include "core/error.h"

namespace circuitlab::data {

static_assert(sizeof(uint16_t) == 2, "uint16 tokens");

const char* shard_format_name(ShardFormat f) {
  switch (f) {
    case ShardFormat::Auto: return "auto";
    case ShardFormat::NanoGPT: return "nanogpt";
    case ShardFormat::LlmC: return "llm.c";
  }
  return "?";
}

namespace {

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Version 1, a token count matching the size, and zero padding: an llm.c-style header.
bool looks_like_llmc_header(const uint8_t* d, size_t size) {
  if (size < kLlmcHeaderBytes) return false;
  if (read_i32(d + 4) != kLlmcVersion) return false;
  int64_t ntok = read_i32(d + 8);
  if (ntok < 0 || kLlmcHeaderBytes + 2 * static_cast<uint64_t>(ntok) != size) return false;
  for (size_t i = 3; i < 256; ++i)
    if (read_i32(d + 4 * i) != 0) return false;
  return true;
}

}  // namespace

TokenShard::TokenShard(const std::string& path, ShardFormat expect) : file_(path) {
  const uint8_t* d = file_.data();
  const size_t size = file_.size();
  const int32_t magic = size >= 4 ? read_i32(d) : 0;
  bool llmc = false;
  if (expect == ShardFormat::LlmC) {
    if (size < kLlmcHeaderBytes)
      fail(path + ": llm.c shard too small for its 1024-byte header (" + std::to_string(size) + " bytes)");
    if (magic != kLlmcMagic)
      fail(path + ": bad magic " + std::to_string(magic) + " in llm.c header, expected " +
           std::to_string(kLlmcMagic));
    llmc = true;
  } else if (expect == ShardFormat::Auto && size >= kLlmcHeaderBytes) {
    if (magic == kLlmcMagic) {
      llmc = true;
    } else if (magic == kLlmcMagicLlama3) {
      fail(path + ": llm.c shard with magic 20240801 (uint32 LLaMA-3 tokens) is not supported, "
           "expected GPT-2 shards (magic 20240520)");
    } else if (looks_like_llmc_header(d, size)) {
      fail(path + ": bad magic " + std::to_string(magic) + " in llm.c header, expected " +
           std::to_string(kLlmcMagic));
    }
  }
  if (llmc) {
    const int32_t version = read_i32(d + 4);
    if (version != kLlmcVersion)
      fail(path + ": llm.c header version " + std::to_string(version) + ", expected 1");
    const int64_t ntok = read_i32(d + 8);
    if (ntok < 0) fail(path + ": llm.c header token count " + std::to_string(ntok) + " is negative");
    const uint64_t want = kLlmcHeaderBytes + 2 * static_cast<uint64_t>(ntok);
    if (want != size)
      fail(path + ": llm.c header says " + std::to_string(ntok) + " tokens (" + std::to_string(want) +
           " bytes) but the file has " + std::to_string(size) + " bytes");
    format_ = ShardFormat::LlmC;
    n_ = static_cast<size_t>(ntok);
    toks_ = reinterpret_cast<const uint16_t*>(d + kLlmcHeaderBytes);
  } else {
    if (size % 2 != 0)
      fail(path + ": odd byte size " + std::to_string(size) +
           ", expected a nanoGPT shard of uint16 tokens (2 bytes each)");
    format_ = ShardFormat::NanoGPT;
    n_ = size / 2;
    toks_ = reinterpret_cast<const uint16_t*>(d);  // mmap is page-aligned
  }
  if (n_ == 0) toks_ = nullptr;
}

ShardWriter::ShardWriter(const std::string& path, ShardFormat format)
    : path_(path), format_(format == ShardFormat::Auto ? ShardFormat::NanoGPT : format),
      file_(std::make_unique<AtomicFile>(path)) {
  buf_.reserve(1 << 16);
  if (format_ == ShardFormat::LlmC) {
    int32_t header[256] = {};
    header[0] = kLlmcMagic;
    header[1] = kLlmcVersion;
    file_->write(header, sizeof header);
  }
}

ShardWriter::~ShardWriter() = default;

void ShardWriter::append(const int32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] > 0xFFFF)
      fail(path_ + ": token id " + std::to_string(ids[i]) + " does not fit a uint16 shard");
    buf_.push_back(static_cast<uint16_t>(ids[i]));
    if (buf_.size() == buf_.capacity()) flush();
  }
  count_ += n;
}

void ShardWriter::flush() {
  if (!buf_.empty()) file_->write(buf_.data(), buf_.size() * sizeof(uint16_t));
  buf_.clear();
}

void ShardWriter::commit() {
  flush();
  if (format_ == ShardFormat::LlmC) {
    if (count_ >= (1ull << 31)) fail(path_ + ": llm.c shards hold fewer than 2^31 tokens");
    int32_t n = static_cast<int32_t>(count_);
    file_->write_at(8, &n, sizeof n);
  }
  file_->commit();
}

void write_nanogpt_shard(const std::string& path, const std::vector<int32_t>& ids) {
  ShardWriter w(path, ShardFormat::NanoGPT);
  w.append(ids);
  w.commit();
}

void write_llmc_shard(const std::string& path, const std::vector<int32_t>& ids) {
  ShardWriter w(path, ShardFormat::LlmC);
  w.append(ids);
  w.commit();
}

std::vector<uint64_t> count_tokens(const TokenShard& shard) {
  std::vector<uint64_t> counts(65536, 0);
  const uint16_t* t = shard.tokens();
  for (size_t i = 0, n = shard.size(); i < n; ++i) ++counts[t[i]];
  return counts;
}

}  // namespace circuitlab::data
