// GPT-2 byte-level BPE: encoder.json + vocab.bpe, GPT-2's pre-tokenization regex (PCRE2,
// Unicode properties, JIT), byte<->unicode map, merge ranks, a word cache. Byte-exact with
// OpenAI's encoder. Special tokens are plain text on encode (encode_ordinary semantics).
// Invalid UTF-8 on encode: each maximal ill-formed run is its own piece (rule in tokenizer.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace circuitlab::data {

constexpr int32_t kEndOfText = 50256;

class Tokenizer {
 public:
  // Error naming the file when missing/corrupt.
  static Tokenizer load(const std::string& encoder_json, const std::string& vocab_bpe);
  // Hugging Face layout: vocab.json + merges.txt (same content, other names).
  static Tokenizer load_dir(const std::string& dir);
  // The project's tokenizer: $CIRCUITLAB_ASSETS/tokenizer or <repo>/assets/tokenizer.
  static Tokenizer load_default();

  std::vector<int32_t> encode(std::string_view text) const;
  // Many documents at once on `threads` threads; result[i] = encode(docs[i]).
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& docs, int threads) const;
  // Invalid UTF-8 in the bytes of the ids is replaced by U+FFFD (as errors='replace').
  std::string decode(const std::vector<int32_t>& ids) const;
  // The exact bytes of the ids (no replacement): decode_bytes(encode(b)) == b for any b.
  // Error naming the id when one is outside the vocabulary (decode too).
  std::string decode_bytes(const std::vector<int32_t>& ids) const;
  // Raw bytes of one token (may be a partial UTF-8 sequence); Error when out of range.
  std::string token_bytes(int32_t id) const;
  // Printable form of one token for tables and the UI (invalid UTF-8 replaced).
  std::string token_str(int32_t id) const;
  int32_t vocab_size() const;

  // For tests and tools: the pre-tokenization pieces of `text` (fast=false: PCRE2 alone, the
  // reference for the ASCII fast path), and BPE of one piece by the O(n^2) rescan (heap=false)
  // or the O(n log n) heap path (heap=true), without the cache.
  std::vector<std::string> pieces(std::string_view text, bool fast = true) const;
  std::vector<int32_t> bpe_reference(std::string_view piece, bool heap) const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Directory holding the project's assets (tokenizer/, corpus/): $CIRCUITLAB_ASSETS, else
// <source dir>/assets as baked in at build time.
std::string assets_dir();

}  // namespace circuitlab::data
