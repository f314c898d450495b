// Unit tests of data/: shard formats (exact bytes, corruption), batch sampling and resume,
// vocab maps, tokenizer internals (fast vs reference BPE, invalid UTF-8 rule, bad files),
// corpus readers (Brown tags, JSONL, OpenWebText-layout archives built here) and prepare.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include "data/batches.h"
#include "data/corpus.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "tests/data/data_test_util.h"

using namespace circuitlab;
using namespace circuitlab::data;
using circuitlab::testing::slurp;
using circuitlab::testing::spit;
using circuitlab::testing::TempDir;

namespace {

const Tokenizer& tok() {
  static Tokenizer t = Tokenizer::load_default();
  return t;
}

// Expects fn() to throw circuitlab::Error whose message contains every needle.
template <class F>
void expect_error(F&& fn, std::vector<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected circuitlab::Error containing \"" << needles[0] << "\"";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error must be one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
  }
}

std::vector<int32_t> iota_tokens(size_t n, int32_t mod = 50257) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((i * 7919 + 13) % mod);
  return v;
}

void put_i32(std::string& s, size_t at, int32_t v) { std::memcpy(&s[at], &v, 4); }

// Writes an llm.c shard byte by byte, independently of ShardWriter (data_common.py layout).
std::string llmc_bytes(const std::vector<int32_t>& toks, int32_t magic = kLlmcMagic, int32_t version = 1,
                       int64_t count = -1) {
  std::string s(1024, '\0');
  put_i32(s, 0, magic);
  put_i32(s, 4, version);
  put_i32(s, 8, static_cast<int32_t>(count < 0 ? toks.size() : count));
  for (int32_t t : toks) {
    s += static_cast<char>(t & 0xFF);
    s += static_cast<char>((t >> 8) & 0xFF);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- shards

TEST(Shards, NanoGptRoundTripIsRawLittleEndianUint16) {
  TempDir d;
  auto toks = iota_tokens(1001);
  write_nanogpt_shard(d / "a.bin", toks);
  std::string bytes = slurp(d / "a.bin");
  ASSERT_EQ(bytes.size(), 2 * toks.size());
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), toks[0] & 0xFF);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), (toks[0] >> 8) & 0xFF);
  TokenShard s(d / "a.bin");
  EXPECT_EQ(s.format(), ShardFormat::NanoGPT);
  ASSERT_EQ(s.size(), toks.size());
  for (size_t i = 0; i < toks.size(); ++i) ASSERT_EQ(s[i], toks[i]) << "at " << i;
}

TEST(Shards, LlmcShardWrittenByHandReadsBack) {
  TempDir d;
  auto toks = iota_tokens(777);
  spit(d / "fineweb_val_000000.bin", llmc_bytes(toks));
  TokenShard s(d / "fineweb_val_000000.bin");
  EXPECT_EQ(s.format(), ShardFormat::LlmC);
  ASSERT_EQ(s.size(), toks.size());
  for (size_t i = 0; i < toks.size(); ++i) ASSERT_EQ(s[i], toks[i]) << "at " << i;
}

TEST(Shards, LlmcWriterProducesTheExactFormat) {
  TempDir d;
  auto toks = iota_tokens(513);
  write_llmc_shard(d / "w.bin", toks);
  EXPECT_EQ(slurp(d / "w.bin"), llmc_bytes(toks));
}

TEST(Shards, OddByteSizeIsRejected) {
  TempDir d;
  spit(d / "odd.bin", std::string(11, 'x'));
  expect_error([&] { TokenShard s(d / "odd.bin"); }, {"odd.bin", "odd byte size 11"});
}

TEST(Shards, LlmcHeaderDisagreeingWithSizeIsRejected) {
  TempDir d;
  auto toks = iota_tokens(100);
  spit(d / "short.bin", llmc_bytes(toks, kLlmcMagic, 1, 120));
  expect_error([&] { TokenShard s(d / "short.bin"); }, {"short.bin", "says 120 tokens", "1224 bytes"});
  std::string b = llmc_bytes(toks);
  b.pop_back();
  spit(d / "trunc.bin", b);
  expect_error([&] { TokenShard s(d / "trunc.bin"); }, {"trunc.bin", "1223 bytes"});
}

TEST(Shards, BadMagicAndVersionAreRejected) {
  TempDir d;
  auto toks = iota_tokens(64);
  spit(d / "magic.bin", llmc_bytes(toks, 20240519));
  expect_error([&] { TokenShard s(d / "magic.bin"); }, {"magic.bin", "bad magic 20240519", "20240520"});
  spit(d / "version.bin", llmc_bytes(toks, kLlmcMagic, 2));
  expect_error([&] { TokenShard s(d / "version.bin"); }, {"version.bin", "version 2"});
  spit(d / "llama.bin", llmc_bytes(toks, kLlmcMagicLlama3, 7));
  expect_error([&] { TokenShard s(d / "llama.bin"); }, {"llama.bin", "20240801"});
  write_nanogpt_shard(d / "plain.bin", iota_tokens(600));
  expect_error([&] { TokenShard s(d / "plain.bin", ShardFormat::LlmC); }, {"plain.bin", "bad magic"});
}

TEST(Shards, CountTokens) {
  TempDir d;
  write_nanogpt_shard(d / "c.bin", {5, 5, 9, 50256, 5});
  auto c = count_tokens(TokenShard(d / "c.bin"));
  EXPECT_EQ(c[5], 3u);
  EXPECT_EQ(c[9], 1u);
  EXPECT_EQ(c[50256], 1u);
  EXPECT_EQ(c[0], 0u);
}

TEST(Shards, WriterRejectsIdsOutsideUint16AndLeavesNoFile) {
  TempDir d;
  expect_error([&] { write_nanogpt_shard(d / "x.bin", {1, 70000}); }, {"x.bin", "70000"});
  EXPECT_TRUE(circuitlab::testing::list_dir(d.path()).empty());
}

// ---------------------------------------------------------------- batches

TEST(Batches, WindowsAreShiftedSlicesOfTheShard) {
  TempDir d;
  auto toks = iota_tokens(5000);
  write_nanogpt_shard(d / "t.bin", toks);
  auto shard = std::make_shared<TokenShard>(d / "t.bin");
  BatchSampler s(shard, 8, 32, 42);
  for (int k = 0; k < 5; ++k) {
    auto offs = s.offsets(s.state().batches_drawn);
    auto [x, y] = s.next();
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{8, 32}));
    ASSERT_EQ(x.dtype(), torch::kInt64);
    for (int b = 0; b < 8; ++b) {
      ASSERT_LE(offs[b] + 32, toks.size() - 1);
      for (int t = 0; t < 32; ++t) {
        ASSERT_EQ(x[b][t].item<int64_t>(), toks[offs[b] + t]);
        ASSERT_EQ(y[b][t].item<int64_t>(), toks[offs[b] + t + 1]);
      }
    }
  }
}

TEST(Batches, ResumeFromStateReproducesTheStream) {
  TempDir d;
  write_nanogpt_shard(d / "t.bin", iota_tokens(10000));
  auto shard = std::make_shared<TokenShard>(d / "t.bin");
  BatchSampler a(shard, 4, 16, 7);
  for (int i = 0; i < 3; ++i) a.next();
  BatchSampler::State st = a.state();
  EXPECT_EQ(st.batches_drawn, 3u);
  auto [x1, y1] = a.next();
  auto [x2, y2] = a.next();
  BatchSampler b(shard, 4, 16, 999);  // another seed: set_state must override it
  b.set_state(st);
  auto [x1b, y1b] = b.next();
  auto [x2b, y2b] = b.next();
  EXPECT_TRUE(torch::equal(x1, x1b) && torch::equal(y1, y1b) && torch::equal(x2, x2b) && torch::equal(y2, y2b));
  BatchSampler c(shard, 4, 16, 8);
  EXPECT_FALSE(torch::equal(c.next().first, BatchSampler(shard, 4, 16, 7).next().first));
  // Ranks of a data-parallel group draw different windows from the same seed.
  BatchSampler r0(shard, 4, 16, 7, std::nullopt, 0, 2), r1(shard, 4, 16, 7, std::nullopt, 1, 2);
  EXPECT_NE(r0.offsets(0), r1.offsets(0));
}

TEST(Batches, OffsetsCoverTheShardUniformly) {
  TempDir d;
  write_nanogpt_shard(d / "t.bin", iota_tokens(1000 + 10));
  auto shard = std::make_shared<TokenShard>(d / "t.bin");
  BatchSampler s(shard, 100, 10, 3);
  std::vector<int> hist(10, 0);
  for (uint64_t k = 0; k < 200; ++k)
    for (uint64_t o : s.offsets(k)) {
      ASSERT_LT(o, 1000u);
      ++hist[o / 100];
    }
  // 20000 draws into 10 bins: each 2000 ± 5 sd (sd ~ 42).
  for (int h : hist) EXPECT_NEAR(h, 2000, 250);
}

TEST(Batches, VocabMapGivesCompactIds) {
  TempDir d;
  std::vector<int32_t> toks = {10, 20, 30, 10, 20, 40, 50256, 10, 20, 30, 99, 10};
  write_nanogpt_shard(d / "t.bin", toks);
  auto shard = std::make_shared<TokenShard>(d / "t.bin");
  VocabMap vm({10, 20, 50256});
  EvalWindows ev(shard, 4, 3, 0, vm);
  torch::Tensor x, y;
  ASSERT_TRUE(ev.next(x, y));
  // windows start at 0, 3, 6 ((12-1)/3 = 3 windows)
  EXPECT_EQ(ev.num_windows(), 3);
  std::vector<int64_t> want_x = {0, 1, 3, 0, 1, 3, 2, 0, 1};
  std::vector<int64_t> want_y = {1, 3, 0, 1, 3, 2, 0, 1, 3};
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 3}));
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(x.view(-1)[i].item<int64_t>(), want_x[i]) << i;
    EXPECT_EQ(y.view(-1)[i].item<int64_t>(), want_y[i]) << i;
  }
  EXPECT_FALSE(ev.next(x, y));
  BatchSampler s(shard, 2, 4, 1, vm);
  auto [bx, by] = s.next();
  EXPECT_LE(bx.max().item<int64_t>(), vm.other_id());
  EXPECT_GE(bx.min().item<int64_t>(), 0);
}

TEST(Batches, ShardTooShortIsAnError) {
  TempDir d;
  write_nanogpt_shard(d / "t.bin", iota_tokens(10));
  auto shard = std::make_shared<TokenShard>(d / "t.bin");
  expect_error([&] { BatchSampler s(shard, 1, 10, 0); }, {"t.bin", "10 tokens", "context+1 = 11"});
  expect_error([&] { EvalWindows e(shard, 1, 10); }, {"t.bin", "10 tokens"});
}

// ---------------------------------------------------------------- vocab maps

TEST(VocabMapTest, TopNOrdersByCountThenId) {
  std::vector<uint64_t> counts(65536, 0);
  counts[7] = 100;
  counts[3] = 50;
  counts[9] = 50;
  counts[50256] = 70;
  counts[60000] = 1000;  // outside GPT-2: ignored
  VocabMap vm = build_top_n_vocab(counts, 5);
  EXPECT_EQ(vm.gpt2_ids(), (std::vector<int32_t>{7, 50256, 3, 9, 0}));
  EXPECT_EQ(vm.size(), 6);
  EXPECT_EQ(vm.other_id(), 5);
  EXPECT_EQ(vm.to_compact(3), 2);
  EXPECT_EQ(vm.to_compact(1234), 5);
  EXPECT_EQ(vm.to_gpt2(1), 50256);
  EXPECT_EQ(vm.to_gpt2(5), -1);
  expect_error([&] { vm.to_gpt2(6); }, {"compact id 6"});
  expect_error([&] { build_top_n_vocab(counts, 0); }, {"outside [1, 50257]"});
}

TEST(VocabMapTest, SaveLoadAndMalformedFiles) {
  TempDir d;
  VocabMap vm({5, 50256, 11});
  vm.save(d / "vocab_map.json");
  auto j = nlohmann::json::parse(slurp(d / "vocab_map.json"));
  EXPECT_EQ(j["format"], "circuitlab-vocab-map-v1");
  EXPECT_EQ(j["d_vocab"], 4);
  EXPECT_EQ(j["other_id"], 3);
  VocabMap back = VocabMap::load(d / "vocab_map.json");
  EXPECT_EQ(back.gpt2_ids(), vm.gpt2_ids());
  spit(d / "bad1.json", R"({"format":"circuitlab-vocab-map-v1","d_vocab":3,"other_id":2,"gpt2_ids":[1,2,3]})");
  expect_error([&] { VocabMap::load(d / "bad1.json"); }, {"bad1.json", "d_vocab"});
  spit(d / "bad2.json", R"({"format":"circuitlab-vocab-map-v1","d_vocab":3,"other_id":2,"gpt2_ids":[1,1]})");
  expect_error([&] { VocabMap::load(d / "bad2.json"); }, {"bad2.json", "twice"});
  spit(d / "bad3.json", "{not json");
  expect_error([&] { VocabMap::load(d / "bad3.json"); }, {"bad3.json", "not valid JSON"});
  expect_error([&] { VocabMap::load(d / "missing.json"); }, {"missing.json"});
}

TEST(VocabMapTest, TokenCountsRoundTrip) {
  TempDir d;
  std::vector<uint64_t> c(65536, 0);
  c[1] = 3;
  c[50256] = 2;
  save_token_counts(d / "tc.json", c);
  auto back = load_token_counts(d / "tc.json");
  ASSERT_EQ(back.size(), 50257u);
  EXPECT_EQ(back[1], 3u);
  EXPECT_EQ(back[50256], 2u);
}

// ---------------------------------------------------------------- tokenizer

TEST(TokenizerTest, KnownIds) {
  // Ids from OpenAI's GPT-2 encoder: "Hello world" -> [15496, 995]; " the" = 262; "\n" = 198.
  EXPECT_EQ(tok().encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok().encode(" the"), (std::vector<int32_t>{262}));
  EXPECT_EQ(tok().encode("\n"), (std::vector<int32_t>{198}));
  EXPECT_EQ(tok().vocab_size(), 50257);
  EXPECT_EQ(tok().token_str(kEndOfText), "<|endoftext|>");
  EXPECT_TRUE(tok().encode("").empty());
}

TEST(TokenizerTest, PiecesFollowGpt2Regex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tok().pieces("Hello  world"), (V{"Hello", " ", " world"}));
  EXPECT_EQ(tok().pieces("it's 42!"), (V{"it", "'s", " 42", "!"}));
  EXPECT_EQ(tok().pieces("a\n\n b"), (V{"a", "\n\n", " b"}));
  EXPECT_EQ(tok().pieces("x   "), (V{"x", "   "}));
}

TEST(TokenizerTest, AsciiFastPathSplitsLikePcre2) {
  // Fragments chosen to hit every rule boundary: contractions, space + class, whitespace runs
  // before letters / non-ASCII spaces / end, non-ASCII letters, digits, symbols, invalid bytes.
  const std::vector<std::string> frag = {
      "a", "Z", "7", " ", "  ", "\t", "\n", "\r\n", "'", "'s", "'ll", "'re", "'x", "!", "--", "\x0b",
      "\xc3\xa9", "\xc2\xa0", "\xe3\x80\x80", "\xd9\xa3", "\xf0\x9f\x98\x80", "\xe2\x80\x8d", "\xff", "\xe2\x82",
      "\x01", "\x1f", "\x7f", "\xc2\x85"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s;
    int parts = 1 + rng() % 12;
    for (int k = 0; k < parts; ++k) s += frag[rng() % frag.size()];
    ASSERT_EQ(tok().pieces(s, true), tok().pieces(s, false)) << nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

TEST(TokenizerTest, InvalidUtf8RunsAreTheirOwnPiecesAndRoundTrip) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tok().pieces("ab\xff\xfe" "cd"), (V{"ab", "\xff\xfe", "cd"}));
  EXPECT_EQ(tok().pieces("\xe2\x82 x"), (V{"\xe2\x82", " x"}));  // truncated sequence
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    auto ids = tok().encode(s);
    ASSERT_EQ(tok().decode_bytes(ids), s) << "trial " << trial;
    ASSERT_EQ(tok().encode(s), ids) << "deterministic";
  }
}

TEST(TokenizerTest, DecodeReplacesInvalidUtf8LikePython) {
  // The lone byte 0xE2 then 'a' (id 64): b'\xe2a'.decode(errors='replace') = '\ufffda'.
  std::vector<int32_t> e2 = tok().encode("\xe2");
  ASSERT_EQ(e2.size(), 1u);
  EXPECT_EQ(tok().token_bytes(e2[0]), "\xe2");
  EXPECT_EQ(tok().decode({e2[0], 64}), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(tok().decode({447}), "\xEF\xBF\xBD");  // 447 = b'\xe2\x80': one maximal subpart
  expect_error([&] { tok().decode({1, 50257}); }, {"50257", "outside the vocabulary"});
  expect_error([&] { tok().decode({-1}); }, {"-1"});
}

TEST(TokenizerTest, HeapBpeMatchesRescanReference) {
  std::mt19937 rng(99);
  const std::string alphabet = "aaabbcdeeeffghilmnoprstuu  =-_.";
  for (int trial = 0; trial < 200; ++trial) {
    size_t n = 1 + rng() % 300;
    std::string s(n, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(tok().bpe_reference(s, true), tok().bpe_reference(s, false)) << s;
  }
  std::string eq(1000, '=');
  EXPECT_EQ(tok().bpe_reference(eq, true), tok().bpe_reference(eq, false));
  EXPECT_EQ(tok().encode(eq), tok().bpe_reference(eq, false));
}

TEST(TokenizerTest, EncodeBatchEqualsEncode) {
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) docs.push_back("Document " + std::to_string(i) + ": " + std::string(i, 'x') + " it's fine.\n");
  auto batch = tok().encode_batch(docs, 2);
  for (size_t i = 0; i < docs.size(); ++i) ASSERT_EQ(batch[i], tok().encode(docs[i])) << i;
}

TEST(TokenizerTest, MissingAndCorruptFilesNameTheFile) {
  TempDir d;
  expect_error([&] { Tokenizer::load(d / "nope.json", d / "nope.bpe"); }, {"nope.json"});
  expect_error([&] { Tokenizer::load_dir(d / "missing"); }, {"missing"});
  std::string src = assets_dir() + "/tokenizer";
  spit(d / "encoder.json", "{\"a\": 0,");
  spit(d / "vocab.bpe", slurp(src + "/vocab.bpe"));
  expect_error([&] { Tokenizer::load_dir(d.path()); }, {"encoder.json", "not valid JSON"});
  spit(d / "encoder.json", "{\"a\": 0}");
  expect_error([&] { Tokenizer::load_dir(d.path()); }, {"encoder.json", "no token for byte"});
  spit(d / "encoder.json", slurp(src + "/encoder.json"));
  spit(d / "vocab.bpe", "#version: 0.2\n\xc4\xa0 t\nbadline\n");
  expect_error([&] { Tokenizer::load_dir(d.path()); }, {"vocab.bpe", "line 3"});
  spit(d / "vocab.bpe", "#version: 0.2\nzzzq zzzq\n");
  expect_error([&] { Tokenizer::load_dir(d.path()); }, {"vocab.bpe", "line 2"});
}

// ---------------------------------------------------------------- corpus readers

TEST(Corpus, BrownTagsAreStrippedToRunningText) {
  std::string tagged =
      "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ,/, "
      "and/cc 1/2/cd (/( of/in it/pps )/) ./.\n"
      "It/pps was/bedz n't/* Atlanta's/np$ ;/. fine/jj ?/.\n\n\n\tNew/jj paragraph/nn ./.\n";
  EXPECT_EQ(brown_detag(tagged),
            "The Fulton County said \"no evidence\", and 1/2 (of it). It wasn't Atlanta's; fine?\n\nNew paragraph.");
}

namespace {

// tar (format: pax restricted) of {name: contents}, compressed with `filter` ("xz", "none").
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files, bool xz) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (xz) archive_write_add_filter_xz(a);
  std::vector<char> buf(64 << 20);
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& [name, data] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

std::vector<int32_t> read_all(const std::string& path) {
  TokenShard s(path);
  return std::vector<int32_t>(s.tokens(), s.tokens() + s.size());
}

}  // namespace

TEST(Corpus, OpenWebTextLayoutArchiveGivesTheSameTokensAsTheTxtFiles) {
  TempDir d;
  // Three subsets of .txt documents, each a tar.xz, inside an outer tar.xz (OpenWebText).
  std::vector<std::vector<std::pair<std::string, std::string>>> subsets = {
      {{"0001-a.txt", "First document.\nIt's short.\n"}, {"0002-b.txt", "Second: 中文 and emoji 👩🏽‍💻\n\n\nend"}},
      {{"0003-c.txt", std::string(5000, 'z') + " long"}, {"notes.md5", "skip me"}},
      {{"0004-d.txt", "Fourth\r\nwith CRLF\r\n"}, {"0005-e.txt", ""}, {"0006-f.txt", "  leading spaces"}}};
  std::vector<std::pair<std::string, std::string>> outer;
  for (size_t i = 0; i < subsets.size(); ++i)
    outer.push_back({"openwebtext/urlsf_subset00-" + std::to_string(i + 1) + "_data.xz", make_tar(subsets[i], true)});
  outer.push_back({"openwebtext/urlsf_subset00-1_data.xz.lock", ""});
  spit(d / "openwebtext.tar.xz", make_tar(outer, true));

  PrepareOptions o;
  o.sources = {{d / "openwebtext.tar.xz", SourceKind::Auto}};
  o.out_dir = d / "out";
  o.val_fraction = 0;
  o.threads = 2;
  o.progress = false;
  PrepareStats st = prepare_corpus(o);
  EXPECT_EQ(st.documents_train, 5u);
  EXPECT_EQ(st.documents_empty, 1u);

  std::vector<int32_t> want;
  for (const auto& sub : subsets)
    for (const auto& [name, text] : sub) {
      if (name.find(".txt") == std::string::npos || text.empty()) continue;
      auto ids = tok().encode(text);
      want.insert(want.end(), ids.begin(), ids.end());
      want.push_back(kEndOfText);
    }
  EXPECT_EQ(read_all(d / "out/train.bin"), want);
  EXPECT_TRUE(read_all(d / "out/val.bin").empty());
  auto meta = nlohmann::json::parse(slurp(d / "out/meta.json"));
  EXPECT_EQ(meta["tokens"]["train"], want.size());
  EXPECT_EQ(meta["sources"][0]["kind"], "archive");
  auto counts = load_token_counts(d / "out/token_counts.json");
  uint64_t total = 0;
  for (auto c : counts) total += c;
  EXPECT_EQ(total, want.size());
}

TEST(Corpus, CorruptArchiveMemberIsAnErrorNamingIt) {
  TempDir d;
  std::string inner = make_tar({{"a.txt", std::string(20000, 'q')}}, true);
  inner.resize(inner.size() / 2);  // truncated xz stream
  spit(d / "owt.tar", make_tar({{"sub/urlsf_subset01-1_data.xz", inner}}, false));
  PrepareOptions o;
  o.sources = {{d / "owt.tar", SourceKind::Auto}};
  o.out_dir = d / "out";
  o.progress = false;
  expect_error([&] { prepare_corpus(o); }, {"owt.tar", "urlsf_subset01-1_data.xz"});
  EXPECT_FALSE(circuitlab::testing::list_dir(d.path()) != std::vector<std::string>{"owt.tar"});
}

TEST(Corpus, JsonlAndFoldersAndSplit) {
  TempDir d;
  std::string jl;
  for (int i = 0; i < 40; ++i) jl += nlohmann::json({{"text", "doc " + std::to_string(i)}, {"id", i}}).dump() + "\n";
  spit(d / "c.jsonl", jl);
  PrepareOptions o;
  o.sources = {{d / "c.jsonl", SourceKind::Auto}};
  o.out_dir = d / "out";
  o.val_fraction = 0.25;
  o.seed = 5;
  o.progress = false;
  PrepareStats st = prepare_corpus(o);
  EXPECT_EQ(st.documents_train + st.documents_val, 40u);
  // The split follows is_val_document exactly.
  uint64_t want_val = 0;
  std::vector<int32_t> want_train;
  for (int i = 0; i < 40; ++i) {
    if (is_val_document(i, 5, 0.25)) {
      ++want_val;
      continue;
    }
    auto ids = tok().encode("doc " + std::to_string(i));
    want_train.insert(want_train.end(), ids.begin(), ids.end());
    want_train.push_back(kEndOfText);
  }
  EXPECT_EQ(st.documents_val, want_val);
  EXPECT_GT(want_val, 2u);
  EXPECT_EQ(read_all(d / "out/train.bin"), want_train);
  // Folder of .txt files: sorted paths, one document each.
  circuitlab::make_dirs(d / "folder/sub");
  spit(d / "folder/b.txt", "bee");
  spit(d / "folder/sub/a.txt", "ay");
  spit(d / "folder/ignored.bin", "zz");
  std::vector<std::string> names;
  read_documents({d / "folder", SourceKind::Auto}, [&](Document&& doc) { names.push_back(doc.text); });
  EXPECT_EQ(names, (std::vector<std::string>{"bee", "ay"}));
  spit(d / "bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": 1}\n");
  expect_error([&] { read_documents({d / "bad.jsonl", SourceKind::Auto}, [](Document&&) {}); },
               {"bad.jsonl:2", "\"text\""});
}

TEST(Corpus, EmptyCorpusAndUnreadablePathsLeaveNoOutput) {
  TempDir d;
  spit(d / "empty.txt", "");
  PrepareOptions o;
  o.sources = {{d / "empty.txt", SourceKind::Auto}};
  o.out_dir = d / "out";
  o.progress = false;
  expect_error([&] { prepare_corpus(o); }, {"empty.txt", "empty corpus"});
  EXPECT_FALSE(circuitlab::is_directory(d / "out"));
  o.sources = {{d / "does-not-exist.txt", SourceKind::Auto}};
  expect_error([&] { prepare_corpus(o); }, {"does-not-exist.txt", "cannot read"});
  EXPECT_FALSE(circuitlab::is_directory(d / "out"));
}
