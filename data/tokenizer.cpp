// GPT-2 byte-level BPE (see tokenizer.h). Sources of the format: openai/gpt-2 src/encoder.py
// (bytes_to_unicode, bpe, the pre-tokenization regex), tiktoken (merge order: the lowest-rank
// adjacent pair first, leftmost on ties). Not a general tokenizer library: GPT-2 files only.
//
// Pre-tokenization. The regex is GPT-2's
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s spelled out as the Unicode White_Space set (what the Python `regex` module and
// tiktoken's fancy-regex match), compiled by PCRE2 with UTF + UCP + JIT.
//
// Invalid UTF-8 (documented rule): the pattern is compiled with PCRE2_MATCH_INVALID_UTF, so
// a match never spans an ill-formed sequence. Every maximal run of bytes that PCRE2 finds
// ill-formed (stray continuation bytes, overlongs, surrogates, truncated sequences, bytes
// F5..FF) becomes one piece of its own and is BPE-merged from its raw bytes like any other
// piece; the valid text around it is split exactly as if the run were a barrier. Nothing is
// dropped or replaced, so decode_bytes(encode(b)) == b for every byte string b.
#include "data/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::data {

namespace {

// Unicode White_Space (PropList.txt): what \s means for OpenAI's encoder (Python `regex`).
#define CL_WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}++| ?\\p{N}++| ?[^" CL_WS "\\p{L}\\p{N}]++"
    "|[" CL_WS "]++\\z|[" CL_WS "]+(?![^" CL_WS "])|[" CL_WS "]";
#undef CL_WS

// openai/gpt-2 encoder.py bytes_to_unicode(): printable bytes map to themselves, the other
// 68 bytes (in order) to U+0100 + n.
std::vector<uint32_t> bytes_to_unicode() {
  std::vector<uint32_t> cp(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
  return cp;
}

void append_utf8(std::string& s, uint32_t c) {
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (c >> 18));
    s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Decodes the byte-to-unicode alphabet back to raw bytes; false on a code point outside it.
bool unicode_to_bytes(const std::string& s, const std::unordered_map<uint32_t, uint8_t>& dec,
                      std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    int len;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c >> 5) == 6) { cp = c & 0x1F; len = 2; }
    else if ((c >> 4) == 14) { cp = c & 0x0F; len = 3; }
    else return false;  // the alphabet stays below U+0800... and is never 4 bytes
    if (i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    auto it = dec.find(cp);
    if (it == dec.end()) return false;
    out += static_cast<char>(it->second);
    i += len;
  }
  return true;
}

// Python bytes.decode('utf-8', errors='replace'): each maximal ill-formed subpart -> U+FFFD.
std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  auto cont = [&](size_t k, uint8_t lo, uint8_t hi) {
    if (k >= n) return false;
    uint8_t c = static_cast<uint8_t>(s[k]);
    return c >= lo && c <= hi;
  };
  while (i < n) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) { out += static_cast<char>(c); ++i; continue; }
    int need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    if (need == 0) { out += "\xEF\xBF\xBD"; ++i; continue; }
    size_t k = i + 1;
    int got = 0;
    if (cont(k, lo, hi)) {
      ++k; ++got;
      while (got < need && cont(k, 0x80, 0xBF)) { ++k; ++got; }
    }
    if (got == need) out.append(s.substr(i, 1 + need));
    else out += "\xEF\xBF\xBD";
    i = k;
  }
  return out;
}

// Open-addressing map (left id, right id) -> (rank, merged id): the BPE inner loop's lookup.
class MergeTable {
 public:
  void build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries) {
    size_t cap = 1;
    while (cap < entries.size() * 2 + 16) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {0, 0});
    mask_ = cap - 1;
    for (const auto& e : entries) {
      size_t h = hash(e.first) & mask_;
      while (keys_[h] != kEmpty && keys_[h] != e.first) h = (h + 1) & mask_;
      if (keys_[h] == kEmpty) { keys_[h] = e.first; vals_[h] = e.second; }  // first (lowest) rank wins
    }
  }
  // rank, or INT32_MAX when the pair never merges.
  int32_t find(int32_t a, int32_t b, int32_t* merged) const {
    uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    size_t h = hash(k) & mask_;
    while (true) {
      uint64_t kk = keys_[h];
      if (kk == k) { *merged = vals_[h].second; return vals_[h].first; }
      if (kk == kEmpty) return INT32_MAX;
      h = (h + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<int32_t, int32_t>> vals_;
  size_t mask_ = 0;
};


// The word cache: piece bytes -> token ids, open addressing over 64-byte entries holding key
// and ids inline, so a hit costs one cache line (std::unordered_map cost ~3 dependent misses
// a lookup and dominated the profile). Pieces up to 22 bytes with up to 8 ids; grows to 2^18
// entries (16 MiB), then starts over empty.
class WordCache {
 public:
  static constexpr size_t kMaxKey = 22, kMaxIds = 8;
  static uint64_t hash(std::string_view s) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xff51afd7ed558ccdull;
      h ^= h >> 32;
    }
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h | 1;  // 0 marks an empty slot
  }
  bool lookup(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
    if (slots_.empty()) return false;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.h == 0) return false;
      if (e.h == h && e.klen == key.size() && std::memcmp(e.key, key.data(), key.size()) == 0) {
        out.insert(out.end(), e.ids, e.ids + e.nids);
        return true;
      }
    }
  }
  void insert(std::string_view key, uint64_t h, const std::vector<int32_t>& ids) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.h == 0) {
        e.h = h;
        e.klen = static_cast<uint8_t>(key.size());
        e.nids = static_cast<uint8_t>(ids.size());
        std::memcpy(e.key, key.data(), key.size());
        std::memcpy(e.ids, ids.data(), ids.size() * sizeof(int32_t));
        ++used_;
        return;
      }
      if (e.h == h && e.klen == key.size() && std::memcmp(e.key, key.data(), key.size()) == 0) return;
    }
  }

 private:
  struct alignas(64) Entry {
    uint64_t h = 0;
    uint8_t klen = 0, nids = 0;
    char key[kMaxKey];
    int32_t ids[kMaxIds];
  };
  static_assert(sizeof(Entry) == 64, "one cache line per entry");
  void grow() {
    constexpr size_t kMaxSlots = 1 << 18;
    size_t cap = slots_.empty() ? (1 << 12) : slots_.size() * 2;
    if (cap > kMaxSlots) {  // full: start over rather than grow without bound
      std::fill(slots_.begin(), slots_.end(), Entry());
      used_ = 0;
      return;
    }
    std::vector<Entry> old;
    old.swap(slots_);
    slots_.assign(cap, Entry());
    mask_ = cap - 1;
    used_ = 0;
    for (const Entry& e : old)
      if (e.h != 0) {
        for (size_t i = e.h & mask_;; i = (i + 1) & mask_)
          if (slots_[i].h == 0) {
            slots_[i] = e;
            ++used_;
            break;
          }
      }
  }
  std::vector<Entry> slots_;
  size_t mask_ = 0, used_ = 0;
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> id_bytes;                 // [V] raw bytes of each token
  std::unordered_map<std::string, int32_t> by_bytes;  // raw bytes -> id
  int32_t byte_id[256];
  MergeTable merges;
  pcre2_code* code = nullptr;

  ~Impl() {
    if (code) pcre2_code_free(code);
  }

  // Scratch of one worker: PCRE2 match data and the word cache (piece bytes -> ids). Kept in
  // a pool owned by the tokenizer, so caches stay warm across calls and across the short-lived
  // worker threads of encode_batch.
  struct Scratch {
    pcre2_match_data* md = nullptr;
    WordCache cache;                                              // short pieces, inline
    std::unordered_map<std::string, std::vector<int32_t>> long_cache;  // the rest up to 64 bytes
    std::string key;
    ~Scratch() {
      if (md) pcre2_match_data_free(md);
    }
  };
  static constexpr size_t kLongCacheMax = 1 << 15;  // entries before long_cache is cleared
  static constexpr size_t kCacheMaxPiece = 64;      // longer pieces are not cached
  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Scratch>> pool;

  std::unique_ptr<Scratch> acquire() const {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        auto s = std::move(pool.back());
        pool.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<Scratch>();
    s->md = pcre2_match_data_create_from_pattern(code, nullptr);
    if (!s->md) fail("tokenizer: out of memory for PCRE2 match data");
    return s;
  }
  void release(std::unique_ptr<Scratch> s) const {
    std::lock_guard<std::mutex> lock(pool_mu);
    pool.push_back(std::move(s));
  }
  // Borrowed scratch, returned to the pool at scope exit.
  struct Lease {
    const Impl& im;
    std::unique_ptr<Scratch> s;
    explicit Lease(const Impl& i) : im(i), s(i.acquire()) {}
    ~Lease() { im.release(std::move(s)); }
    Scratch& operator*() { return *s; }
  };

  // BPE of one piece, small pieces: rescan for the lowest-rank pair each round (O(n^2)).
  void bpe_scan(std::string_view piece, std::vector<int32_t>& out) const {
    std::vector<int32_t> ids(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) ids[i] = byte_id[static_cast<uint8_t>(piece[i])];
    while (ids.size() > 1) {
      int32_t best = INT32_MAX, best_id = -1;
      size_t at = 0;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        int32_t m;
        int32_t r = merges.find(ids[i], ids[i + 1], &m);
        if (r < best) { best = r; best_id = m; at = i; }
      }
      if (best == INT32_MAX) break;
      ids[at] = best_id;
      ids.erase(ids.begin() + at + 1);
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }

  // BPE of one piece, long pieces: linked list + min-heap keyed (rank, position), stale
  // entries skipped. Same merge order as bpe_scan (lowest rank, leftmost), O(n log n).
  void bpe_heap(std::string_view piece, std::vector<int32_t>& out) const {
    const int32_t n = static_cast<int32_t>(piece.size());
    std::vector<int32_t> id(n), prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (int32_t i = 0; i < n; ++i) {
      id[i] = byte_id[static_cast<uint8_t>(piece[i])];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Cand { int32_t rank, pos, left_id, right_id; };
    auto cmp = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> heap(cmp);
    auto push = [&](int32_t i) {
      if (i < 0 || next[i] < 0) return;
      int32_t m;
      int32_t r = merges.find(id[i], id[next[i]], &m);
      if (r != INT32_MAX) heap.push({r, i, id[i], id[next[i]]});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      int32_t i = c.pos;
      if (!alive[i] || next[i] < 0 || id[i] != c.left_id || id[next[i]] != c.right_id) continue;
      int32_t m;
      merges.find(id[i], id[next[i]], &m);
      int32_t j = next[i];
      id[i] = m;
      alive[j] = false;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      push(prev[i]);
      push(i);
    }
    for (int32_t i = 0; i >= 0 && i < n; i = next[i]) out.push_back(id[i]);
  }

  void bpe(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.size() <= 48)
      bpe_scan(piece, out);
    else
      bpe_heap(piece, out);
  }

  void encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const {
    if (piece.size() == 1) {
      out.push_back(byte_id[static_cast<uint8_t>(piece[0])]);
      return;
    }
    if (piece.size() > kCacheMaxPiece) {
      bpe(piece, out);
      return;
    }
    const uint64_t h = WordCache::hash(piece);
    if (s.cache.lookup(piece, h, out)) return;
    const bool short_piece = piece.size() <= WordCache::kMaxKey;
    s.key.assign(piece.data(), piece.size());
    if (!short_piece) {
      auto it = s.long_cache.find(s.key);
      if (it != s.long_cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids;
    auto whole = by_bytes.find(s.key);
    if (whole != by_bytes.end())
      ids.push_back(whole->second);
    else
      bpe(piece, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (short_piece && ids.size() <= WordCache::kMaxIds) {
      s.cache.insert(piece, h, ids);
    } else {
      if (s.long_cache.size() >= kLongCacheMax) s.long_cache.clear();
      s.long_cache.emplace(s.key, std::move(ids));
    }
  }

  // Splits `text` into pre-tokenization pieces, calling emit(begin, end) for each in order.
  // fast=true scans ASCII by hand (same rules as the regex, written out below) and hands
  // over to PCRE2 for one piece whenever a piece touches a non-ASCII byte; fast=false uses
  // PCRE2 for everything (the reference the tests hold the fast path to).
  template <class Emit>
  void split(std::string_view text, Scratch& s, bool fast, Emit&& emit) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const auto* u = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
    size_t off = 0;
    while (off < n) {
      if (fast && u[off] < 0x80) {
        size_t end = ascii_piece(u, n, off);
        if (end != 0) {
          emit(off, end);
          off = end;
          continue;
        }
      }
      int rc = pcre2_jit_match(code, subject, n, off, 0, s.md, nullptr);
      size_t ms, me;
      if (rc == PCRE2_ERROR_NOMATCH) {
        ms = me = n;
      } else if (rc < 0) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(rc, buf, sizeof buf);
        fail(std::string("tokenizer: pre-tokenization regex failed: ") + reinterpret_cast<char*>(buf));
      } else {
        ms = ov[0];
        me = ov[1];
      }
      if (ms > off) emit(off, ms);  // a run of ill-formed UTF-8
      if (me > ms) emit(ms, me);
      if (me == ms && ms < n) fail("tokenizer: pre-tokenization regex made an empty match");
      off = me;
    }
  }

  // ASCII classes of the regex: letters (\p{L}), digits (\p{N}), White_Space, other.
  enum : uint8_t { kL = 1, kN = 2, kS = 3, kO = 4 };
  static uint8_t ascii_class(uint8_t c) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return kL;
    if (c >= '0' && c <= '9') return kN;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return kS;
    return kO;
  }

  // The piece starting at ASCII byte u[i], decided from ASCII bytes alone: its end, or 0
  // when deciding needs a non-ASCII byte (a letter/digit/symbol/space run that reaches one).
  static size_t ascii_piece(const uint8_t* u, size_t n, size_t i) {
    const uint8_t c = u[i];
    // 's|'t|'re|'ve|'m|'ll|'d
    if (c == '\'' && i + 1 < n) {
      uint8_t a = u[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
      if (i + 2 < n) {
        uint8_t b = u[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
      }
    }
    auto run = [&](size_t j, uint8_t cls) -> size_t {  // end of the class run from j; 0 if it hits non-ASCII
      while (j < n && u[j] < 0x80 && ascii_class(u[j]) == cls) ++j;
      if (j < n && u[j] >= 0x80) return 0;
      return j;
    };
    uint8_t cls = ascii_class(c);
    // ' ?\p{L}++' | ' ?\p{N}++' | ' ?[^\s\p{L}\p{N}]++'
    if (c == ' ' && i + 1 < n) {
      if (u[i + 1] >= 0x80) return 0;
      uint8_t next = ascii_class(u[i + 1]);
      if (next != kS) return run(i + 1, next);
    }
    if (cls != kS) return run(i, cls);
    // '\s++\z' | '\s+(?!\S)' | '\s'
    size_t j = i;
    while (j < n && u[j] < 0x80 && ascii_class(u[j]) == kS) ++j;
    if (j == n) return n;
    if (u[j] >= 0x80) return 0;  // U+00A0, U+3000, ... may continue the run
    return j - i >= 2 ? j - 1 : j;
  }

  void encode_into(std::string_view text, std::vector<int32_t>& out, bool fast = true) const {
    Lease lease(*this);
    Scratch& s = *lease;
    split(text, s, fast, [&](size_t b, size_t e) { encode_piece(text.substr(b, e - b), s, out); });
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& encoder_json, const std::string& vocab_bpe) {
  Tokenizer t;
  Impl& im = *t.impl_;
  // Byte-level alphabet.
  std::vector<uint32_t> b2u = bytes_to_unicode();
  std::unordered_map<uint32_t, uint8_t> u2b;
  for (int b = 0; b < 256; ++b) u2b[b2u[b]] = static_cast<uint8_t>(b);

  // encoder.json: {token string in the byte alphabet: id}.
  nlohmann::json enc;
  {
    std::string text = read_file(encoder_json);
    try {
      enc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(encoder_json + ": not valid JSON (" + std::string(e.what()) + ")");
    }
  }
  if (!enc.is_object() || enc.empty())
    fail(encoder_json + ": expected a JSON object {token: id} (GPT-2 encoder.json)");
  const size_t V = enc.size();
  im.id_bytes.assign(V, std::string());
  std::vector<bool> seen(V, false);
  std::string raw;
  for (auto it = enc.begin(); it != enc.end(); ++it) {
    if (!it.value().is_number_integer())
      fail(encoder_json + ": token \"" + it.key() + "\" has a non-integer id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || static_cast<size_t>(id) >= V)
      fail(encoder_json + ": id " + std::to_string(id) + " of token \"" + it.key() + "\" outside [0, " +
           std::to_string(V) + ")");
    if (seen[id]) fail(encoder_json + ": id " + std::to_string(id) + " used twice");
    seen[id] = true;
    if (it.key() == "<|endoftext|>") {
      raw = it.key();  // special token: its text, never produced by encode
    } else if (!unicode_to_bytes(it.key(), u2b, raw)) {
      fail(encoder_json + ": token \"" + it.key() + "\" is not in GPT-2's byte-to-unicode alphabet");
    }
    im.id_bytes[id] = raw;
    if (it.key() != "<|endoftext|>") im.by_bytes.emplace(raw, static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = im.by_bytes.find(std::string(1, static_cast<char>(b)));
    if (it == im.by_bytes.end())
      fail(encoder_json + ": no token for byte " + std::to_string(b) + " (expected all 256 byte tokens)");
    im.byte_id[b] = it->second;
  }

  // vocab.bpe: "#version: 0.2" then one merge "A B" per line, in rank order.
  std::string bpe = read_file(vocab_bpe);
  std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> entries;
  size_t pos = 0, line_no = 0;
  int32_t rank = 0;
  std::string a, b;
  while (pos < bpe.size()) {
    size_t eol = bpe.find('\n', pos);
    if (eol == std::string::npos) eol = bpe.size();
    std::string_view line(bpe.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos)
      fail(vocab_bpe + ": line " + std::to_string(line_no) + ": expected a merge \"A B\"");
    std::string ra, rb;
    if (!unicode_to_bytes(std::string(line.substr(0, sp)), u2b, ra) ||
        !unicode_to_bytes(std::string(line.substr(sp + 1)), u2b, rb))
      fail(vocab_bpe + ": line " + std::to_string(line_no) + ": symbol outside GPT-2's byte alphabet");
    auto ia = im.by_bytes.find(ra), ib = im.by_bytes.find(rb), im_ = im.by_bytes.find(ra + rb);
    if (ia == im.by_bytes.end() || ib == im.by_bytes.end() || im_ == im.by_bytes.end())
      fail(vocab_bpe + ": line " + std::to_string(line_no) + ": merge \"" + std::string(line) +
           "\" uses a token missing from " + encoder_json);
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
                   static_cast<uint32_t>(ib->second);
    entries.push_back({key, {rank++, im_->second}});
  }
  if (entries.empty()) fail(vocab_bpe + ": no merges (expected GPT-2's 50000 merge lines)");
  im.merges.build(entries);

  int errcode;
  PCRE2_SIZE erroff;
  im.code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, nullptr);
  if (!im.code) fail("tokenizer: cannot compile the pre-tokenization regex (PCRE2 error " +
                     std::to_string(errcode) + ")");
  if (pcre2_jit_compile(im.code, PCRE2_JIT_COMPLETE) != 0)
    fail("tokenizer: PCRE2 JIT is unavailable (libpcre2 built without JIT support)");
  return t;
}

Tokenizer Tokenizer::load_dir(const std::string& dir) {
  if (file_exists(dir + "/encoder.json") || file_exists(dir + "/vocab.bpe"))
    return load(dir + "/encoder.json", dir + "/vocab.bpe");
  if (file_exists(dir + "/vocab.json") || file_exists(dir + "/merges.txt"))
    return load(dir + "/vocab.json", dir + "/merges.txt");
  if (!is_directory(dir)) fail(dir + ": tokenizer directory not found");
  fail(dir + ": no tokenizer files (expected encoder.json + vocab.bpe or vocab.json + merges.txt)");
}

Tokenizer Tokenizer::load_default() { return load_dir(assets_dir() + "/tokenizer"); }

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode_into(text, out);
  return out;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& docs,
                                                          int threads) const {
  std::vector<std::vector<int32_t>> out(docs.size());
  if (threads <= 1 || docs.size() <= 1) {
    for (size_t i = 0; i < docs.size(); ++i) out[i] = encode(docs[i]);
    return out;
  }
  std::atomic<size_t> next{0};
  std::vector<std::string> errors(threads);
  auto work = [&](int w) {
    try {
      for (size_t i; (i = next.fetch_add(1)) < docs.size();) out[i] = encode(docs[i]);
    } catch (const std::exception& e) {
      errors[w] = e.what();
      next = docs.size();
    }
  };
  std::vector<std::thread> pool;
  int nt = static_cast<int>(std::min<size_t>(threads, docs.size()));
  for (int w = 1; w < nt; ++w) pool.emplace_back(work, w);
  work(0);
  for (auto& th : pool) th.join();
  for (const auto& e : errors)
    if (!e.empty()) fail(e);
  return out;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids) const {
  std::string out;
  const int32_t V = vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= V)
      fail("decode: token id " + std::to_string(id) + " outside the vocabulary [0, " + std::to_string(V) + ")");
    out += impl_->id_bytes[id];
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  return replace_invalid_utf8(decode_bytes(ids));
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("token id " + std::to_string(id) + " outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
  return impl_->id_bytes[id];
}

std::string Tokenizer::token_str(int32_t id) const { return replace_invalid_utf8(token_bytes(id)); }

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_bytes.size()); }

std::vector<int32_t> Tokenizer::bpe_reference(std::string_view piece, bool heap) const {
  std::vector<int32_t> out;
  if (piece.empty()) return out;
  if (heap)
    impl_->bpe_heap(piece, out);
  else
    impl_->bpe_scan(piece, out);
  return out;
}

std::vector<std::string> Tokenizer::pieces(std::string_view text, bool fast) const {
  std::vector<std::string> out;
  Impl::Lease lease(*impl_);
  impl_->split(text, *lease, fast, [&](size_t b, size_t e) { out.emplace_back(text.substr(b, e - b)); });
  return out;
}

std::string assets_dir() {
  const char* env = std::getenv("CIRCUITLAB_ASSETS");
  if (env && *env) return env;
  return std::string(CIRCUITLAB_SOURCE_DIR) + "/assets";
}

}  // namespace circuitlab::data
