// Subcommands of the data layer (see apps/commands.h): encode, decode, prepare, corpus-stats.
// Thin wrappers: parsing options and printing; the work lives in data/.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <algorithm>
#include <cctype>

#include "apps/commands.h"
#include "data/corpus.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/tokenizer.h"

namespace circuitlab::apps {

namespace {

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
  if (std::ferror(stdin)) fail("stdin: read failed");
  return s;
}

data::Tokenizer load_tokenizer(const std::string& dir) {
  return dir.empty() ? data::Tokenizer::load_default() : data::Tokenizer::load_dir(dir);
}

void write_stdout(const std::string& s) {
  if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout) != 0)
    fail("stdout: write failed");
}

}  // namespace

void register_data_commands(CLI::App& app) {
  // ---- encode ----
  {
    auto* cmd = app.add_subcommand("encode", "Read text on stdin, print GPT-2 token ids on one line");
    auto tok_dir = std::make_shared<std::string>();
    auto threads = std::make_shared<int>(0);
    cmd->add_option("--tokenizer", *tok_dir,
                    "Directory with encoder.json + vocab.bpe (default: $CIRCUITLAB_ASSETS/tokenizer)");
    cmd->add_option("--threads", *threads, "Worker threads (one text is encoded on one thread)");
    cmd->callback([tok_dir, threads] {
      set_threads(*threads);
      data::Tokenizer tok = load_tokenizer(*tok_dir);
      std::vector<int32_t> ids = tok.encode(read_stdin());
      std::string out;
      out.reserve(ids.size() * 6 + 1);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ' ';
        out += std::to_string(ids[i]);
      }
      out += '\n';
      write_stdout(out);
    });
  }
  // ---- decode ----
  {
    auto* cmd = app.add_subcommand("decode", "Read token ids (whitespace separated) on stdin, print the text");
    auto tok_dir = std::make_shared<std::string>();
    auto threads = std::make_shared<int>(0);
    auto raw = std::make_shared<bool>(false);
    cmd->add_option("--tokenizer", *tok_dir,
                    "Directory with encoder.json + vocab.bpe (default: $CIRCUITLAB_ASSETS/tokenizer)");
    cmd->add_option("--threads", *threads, "Worker threads (unused: decoding is a table lookup)");
    cmd->add_flag("--bytes", *raw,
                  "Print the tokens' exact bytes (default: invalid UTF-8 replaced by U+FFFD as in Python's errors='replace')");
    cmd->callback([tok_dir, threads, raw] {
      set_threads(*threads);
      data::Tokenizer tok = load_tokenizer(*tok_dir);
      std::string in = read_stdin();
      std::vector<int32_t> ids;
      size_t i = 0, n = in.size();
      while (i < n) {
        while (i < n && std::isspace(static_cast<unsigned char>(in[i]))) ++i;
        if (i >= n) break;
        size_t j = i;
        while (j < n && !std::isspace(static_cast<unsigned char>(in[j]))) ++j;
        std::string word = in.substr(i, j - i);
        bool ok = !word.empty() && word.size() <= 10;
        for (char c : word) ok = ok && c >= '0' && c <= '9';
        if (!ok) fail("stdin: \"" + word.substr(0, 40) + "\" is not a token id (expected non-negative integers)");
        long long v = std::stoll(word);
        if (v >= tok.vocab_size())
          fail("stdin: token id " + word + " outside the vocabulary [0, " + std::to_string(tok.vocab_size()) + ")");
        ids.push_back(static_cast<int32_t>(v));
        i = j;
      }
      write_stdout(*raw ? tok.decode_bytes(ids) : tok.decode(ids));
    });
  }
  // ---- prepare ----
  {
    auto* cmd = app.add_subcommand(
        "prepare",
        "Tokenize a corpus into nanoGPT shards: train.bin, val.bin (uint16, EOT after each document), "
        "meta.json, token_counts.json");
    struct Opts {
      std::vector<std::string> paths;
      bool use_default = false;
      std::string out, format = "auto", tokenizer;
      double val_fraction = 0.05;
      uint64_t seed = 2357;
      int threads = 0;
      bool quiet = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("sources", o->paths,
                    "Corpus paths: .txt files, folders, .jsonl (field \"text\"), OpenWebText-layout "
                    ".tar.xz (nested tar.xz of .txt), a Brown corpus or nlp-corpus folder");
    cmd->add_flag("--default", o->use_default,
                  "The embedded default corpus: Brown + nlp-corpus from $CIRCUITLAB_ASSETS/corpus");
    cmd->add_option("--out", o->out, "Output directory")->required();
    cmd->add_option("--format", o->format,
                    "Source kind for every path: auto, txt, jsonl, archive (owt), brown, nlp-corpus, folder")
        ->capture_default_str();
    cmd->add_option("--val-fraction", o->val_fraction, "Share of documents in val.bin (seeded hash)")
        ->capture_default_str();
    cmd->add_option("--seed", o->seed, "Seed of the document-level split")->capture_default_str();
    cmd->add_option("--threads", o->threads, "Tokenizer threads (0: all cores)");
    cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer directory (default: $CIRCUITLAB_ASSETS/tokenizer)");
    cmd->add_flag("--quiet", o->quiet, "No progress bar");
    cmd->callback([o] {
      if (!o->use_default && o->paths.empty()) fail("prepare: no corpus given (pass paths, or --default)");
      data::PrepareOptions p;
      if (o->use_default) {
        p.sources = data::default_corpus_sources();
      }
      data::SourceKind kind = data::parse_source_kind(o->format);
      for (const auto& path : o->paths) p.sources.push_back({path, kind});
      p.out_dir = o->out;
      p.val_fraction = o->val_fraction;
      p.seed = o->seed;
      int hw = static_cast<int>(std::thread::hardware_concurrency());
      p.threads = o->threads > 0 ? o->threads : std::max(1, hw);
      set_threads(1);
      p.progress = !o->quiet;
      p.tokenizer_dir = o->tokenizer;
      data::PrepareStats st = data::prepare_corpus(p);
      std::printf("prepared %s: %llu documents (%llu train, %llu val), %llu tokens (%llu train, %llu val), "
                  "%.1f MB text in %.1f s\n",
                  p.out_dir.c_str(), (unsigned long long)(st.documents_train + st.documents_val),
                  (unsigned long long)st.documents_train, (unsigned long long)st.documents_val,
                  (unsigned long long)(st.tokens_train + st.tokens_val), (unsigned long long)st.tokens_train,
                  (unsigned long long)st.tokens_val, st.text_bytes / 1e6, st.seconds);
    });
  }
  // ---- corpus-stats ----
  {
    auto* cmd = app.add_subcommand("corpus-stats", "Print the statistics of a prepared corpus directory");
    auto dir = std::make_shared<std::string>();
    auto top = std::make_shared<int>(20);
    auto threads = std::make_shared<int>(0);
    auto tok_dir = std::make_shared<std::string>();
    cmd->add_option("dir", *dir, "Directory written by `circuitlab prepare`")->required();
    cmd->add_option("--top", *top, "How many of the most frequent tokens to list")->capture_default_str();
    cmd->add_option("--threads", *threads, "Worker threads (unused: counting is one pass)");
    cmd->add_option("--tokenizer", *tok_dir, "Tokenizer directory (default: $CIRCUITLAB_ASSETS/tokenizer)");
    cmd->callback([dir, top, threads, tok_dir] {
      set_threads(*threads);
      data::Tokenizer tok = load_tokenizer(*tok_dir);
      write_stdout(data::corpus_stats_report(*dir, *top, tok));
    });
  }
}

}  // namespace circuitlab::apps
