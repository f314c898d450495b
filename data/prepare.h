// Corpus -> token shards (DESIGN.md contract 3): documents streamed from any corpus source,
// tokenized in parallel batches, EOT 50256 appended after each document, a seeded
// document-level train/val split, written as nanoGPT train.bin / val.bin + meta.json +
// token_counts.json. Memory stays bounded by one batch of documents. Not a sampler.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/tokenizer.h"

namespace circuitlab::data {

struct PrepareOptions {
  std::vector<CorpusSource> sources;
  std::string out_dir;
  double val_fraction = 0.05;  // share of documents sent to val.bin (by a seeded hash)
  uint64_t seed = 2357;        // nanoGPT's split seed
  int threads = 1;             // tokenizer threads
  size_t batch_bytes = 8 << 20;  // text bytes per parallel tokenization batch
  bool progress = true;
  std::string tokenizer_dir;   // empty: the default (assets/tokenizer)
};

struct PrepareStats {
  uint64_t documents_train = 0, documents_val = 0, documents_empty = 0;
  uint64_t tokens_train = 0, tokens_val = 0;  // including EOTs
  uint64_t text_bytes = 0, input_bytes = 0;
  double seconds = 0;
};

// The split rule: document i (0-based, in source order) goes to val when
// splitmix64(seed ^ splitmix64(i)) / 2^64 < val_fraction. When no document lands in val
// and val_fraction > 0 and there are at least two documents, the last one goes to val.
bool is_val_document(uint64_t index, uint64_t seed, double val_fraction);

// Error naming the source/file for unreadable input, no documents, or unwritable output;
// on error nothing is left at out_dir/{train.bin,val.bin,meta.json,token_counts.json} that
// was not there before (and a directory created by this call is removed again when empty).
PrepareStats prepare_corpus(const PrepareOptions& opts);

// What corpus-stats reads of a prepared corpus's meta.json (the counts it checks and prints).
struct CorpusMeta {
  struct Source {
    std::string kind = "?", path = "?";
    uint64_t documents = 0, tokens = 0;
  };
  uint64_t documents_train = 0, documents_val = 0;  // documents.{train,val} (required)
  uint64_t tokens_train = 0, tokens_val = 0;        // tokens.{train,val} (required)
  uint64_t text_bytes = 0;
  std::vector<Source> sources;
  bool has_split = false;
  double val_fraction = 0;
  uint64_t split_seed = 0;
};
// Reads meta.json strictly: Error "<path>: field '<name>' ..." for a missing or mistyped field.
CorpusMeta read_corpus_meta(const std::string& meta_path);

// `circuitlab corpus-stats DIR`: reads meta.json, memory-maps train.bin / val.bin, checks the
// token counts agree with meta.json, and returns a printable report (documents, tokens,
// bytes, bytes/token, the top_n most frequent train tokens with their strings).
// Error naming the file when the directory is not a prepared corpus or disagrees with itself.
std::string corpus_stats_report(const std::string& dir, int top_n, const Tokenizer& tok);

}  // namespace circuitlab::data
