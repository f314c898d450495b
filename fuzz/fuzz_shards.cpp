// libFuzzer target: token shard readers (nanoGPT raw uint16, llm.c int32[256] header) on
// arbitrary file contents, each format forced and auto-detected. A bad file must be an Error;
// an accepted one must have every token inside the mapping (count_tokens reads them all).
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/shards.h"
#include "fuzz/fuzz_util.h"

using namespace circuitlab;
using data::ShardFormat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string path = fuzz::write_scratch("shard.bin", bytes, size);
  for (ShardFormat f : {ShardFormat::Auto, ShardFormat::NanoGPT, ShardFormat::LlmC}) {
    try {
      data::TokenShard shard(path, f);
      FUZZ_CHECK(shard.format() != ShardFormat::Auto, "format left unresolved");
      const size_t header = shard.format() == ShardFormat::LlmC ? data::kLlmcHeaderBytes : 0;
      FUZZ_CHECK(header + 2 * shard.size() <= size, "%zu tokens claimed in a %zu-byte file", shard.size(), size);
      const auto counts = data::count_tokens(shard);
      uint64_t total = 0;
      for (uint64_t c : counts) total += c;
      FUZZ_CHECK(total == shard.size(), "count_tokens total %llu != size %zu", (unsigned long long)total, shard.size());
    } catch (const Error&) {
      // a clear rejection is the expected outcome for most inputs
    }
  }
  return 0;
}
