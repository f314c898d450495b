// libFuzzer target: GPT-2 tokenizer on arbitrary bytes. encode -> decode_bytes must give the
// input back byte for byte (any bytes), decode must too when the input is valid UTF-8, and
// every id must lie inside the vocabulary. Not a test of the tokenizer files' parser.
#include <cstdint>
#include <string>
#include <string_view>

#include "data/tokenizer.h"
#include "fuzz/fuzz_util.h"

using circuitlab::data::Tokenizer;

namespace {

// RFC 3629 well-formedness (no surrogates, no overlongs, <= U+10FFFF).
bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return false;
    if (i + len > n) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load_default();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tok();  // load encoder.json + vocab.bpe once, outside the timed inputs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = tok().encode(text);
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok().vocab_size(), "id %d outside [0, %d)", id, tok().vocab_size());
  const std::string back = tok().decode_bytes(ids);
  FUZZ_CHECK(back == text, "decode_bytes(encode(x)) != x (%zu vs %zu bytes)", back.size(), size);
  if (valid_utf8(data, size)) {
    const std::string s = tok().decode(ids);
    FUZZ_CHECK(s == text, "decode(encode(x)) != x for valid UTF-8 (%zu vs %zu bytes)", s.size(), size);
  }
  // The pre-tokenizer pieces concatenate back to the input.
  std::string joined;
  for (const auto& p : tok().pieces(text)) joined += p;
  FUZZ_CHECK(joined == text, "pieces do not concatenate to the input");
  return 0;
}
