// Corpus -> nanoGPT shards, and the corpus-stats report (see prepare.h). Layout follows
// nanoGPT data/openwebtext/prepare.py: encode_ordinary, EOT appended after each document,
// uint16 little-endian, no header.
#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "core/progress.h"
#include "data/shards.h"
#include "core/splitmix.h"
#include "data/vocab_map.h"

namespace circuitlab::data {

namespace {

std::string fmt_count(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

struct PerSource { uint64_t documents = 0, tokens = 0, text_bytes = 0; };

// meta.json of a prepared directory: format, tokenizer, per-source counts, split rule.
nlohmann::json shards_meta(const PrepareOptions& opts, const Tokenizer& tok, const std::vector<CorpusSource>& sources,
                           const std::vector<uint64_t>& source_input, const std::vector<PerSource>& per,
                           const PrepareStats& st) {
  nlohmann::json meta;
  meta["format"] = "circuitlab-shards-v1";
  meta["layout"] = "nanogpt";
  meta["dtype"] = "uint16";
  meta["byte_order"] = "little";
  meta["tokenizer"] = {{"name", "gpt2"},
                       {"vocab_size", tok.vocab_size()},
                       {"eot", kEndOfText},
                       {"eot_placement", "after each document"},
                       {"special_tokens", "plain text (encode_ordinary)"},
                       {"files", opts.tokenizer_dir.empty() ? assets_dir() + "/tokenizer" : opts.tokenizer_dir}};
  nlohmann::json srcs = nlohmann::json::array();
  for (size_t i = 0; i < sources.size(); ++i)
    srcs.push_back({{"path", sources[i].path},
                    {"kind", source_kind_name(sources[i].kind)},
                    {"input_bytes", source_input[i]},
                    {"documents", per[i].documents},
                    {"text_bytes", per[i].text_bytes},
                    {"tokens", per[i].tokens}});
  meta["sources"] = srcs;
  meta["documents"] = {{"train", st.documents_train}, {"val", st.documents_val},
                       {"total", st.documents_train + st.documents_val}, {"empty_skipped", st.documents_empty}};
  meta["tokens"] = {{"train", st.tokens_train}, {"val", st.tokens_val},
                    {"total", st.tokens_train + st.tokens_val}};
  meta["text_bytes"] = st.text_bytes;
  meta["split"] = {{"unit", "document"},
                   {"val_fraction", opts.val_fraction},
                   {"seed", opts.seed},
                   {"rule", "val iff splitmix64(seed ^ splitmix64(doc_index)) / 2^64 < val_fraction; "
                            "last document to val if none landed there"}};
  meta["files"] = {{"train", "train.bin"}, {"val", "val.bin"}, {"token_counts", "token_counts.json"}};
  meta["seconds"] = st.seconds;
  return meta;
}

}  // namespace

bool is_val_document(uint64_t index, uint64_t seed, double val_fraction) {
  if (val_fraction <= 0) return false;
  if (val_fraction >= 1) return true;
  double u = static_cast<double>(splitmix64(seed ^ splitmix64(index)) >> 11) * 0x1.0p-53;
  return u < val_fraction;
}

PrepareStats prepare_corpus(const PrepareOptions& opts) {
  if (opts.sources.empty()) fail("sources: no corpus given");
  if (opts.out_dir.empty()) fail("out_dir: no output directory given");
  if (!(opts.val_fraction >= 0 && opts.val_fraction < 1))
    fail("val_fraction: " + std::to_string(opts.val_fraction) + " outside [0, 1)");
  Tokenizer tok = opts.tokenizer_dir.empty() ? Tokenizer::load_default() : Tokenizer::load_dir(opts.tokenizer_dir);

  // Validate every source before touching the output directory.
  std::vector<CorpusSource> sources = opts.sources;
  uint64_t total_bytes = 0;
  std::vector<uint64_t> source_input(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].kind == SourceKind::Auto) sources[i].kind = detect_source_kind(sources[i].path);
    source_input[i] = source_bytes(sources[i]);
    total_bytes += source_input[i];
  }

  const std::string& out = opts.out_dir;
  const bool created_dir = !is_directory(out);
  make_dirs(out);
  PrepareStats st;
  try {
    ShardWriter train(out + "/train.bin"), val(out + "/val.bin");
    std::vector<uint64_t> counts(65536, 0);
    std::vector<PerSource> per(sources.size());
    std::optional<ProgressBar> bar;
    if (opts.progress) bar.emplace("prepare", static_cast<double>(total_bytes), "MB", 1e6);

    uint64_t doc_index = 0;
    std::vector<int32_t> held;  // the previous document, written one behind (see is_val_document)
    bool held_val = false, have_held = false;
    auto write_doc = [&](const std::vector<int32_t>& ids, bool to_val) {
      if (to_val) {
        val.append(ids);
        ++st.documents_val;
        st.tokens_val += ids.size();
      } else {
        train.append(ids);
        for (int32_t id : ids) ++counts[static_cast<uint16_t>(id)];
        ++st.documents_train;
        st.tokens_train += ids.size();
      }
    };
    auto emit = [&](std::vector<int32_t>&& ids) {
      ids.push_back(kEndOfText);
      bool v = is_val_document(doc_index++, opts.seed, opts.val_fraction);
      if (have_held) write_doc(held, held_val);
      held = std::move(ids);
      held_val = v;
      have_held = true;
    };

    std::vector<std::string> batch;
    size_t batch_size_bytes = 0;
    size_t cur_source = 0;
    auto flush = [&] {
      if (batch.empty()) return;
      auto encoded = tok.encode_batch(batch, std::max(1, opts.threads));
      for (auto& ids : encoded) {
        per[cur_source].tokens += ids.size() + 1;
        emit(std::move(ids));
      }
      batch.clear();
      batch_size_bytes = 0;
    };

    uint64_t done_before = 0;
    for (cur_source = 0; cur_source < sources.size(); ++cur_source) {
      const uint64_t base = done_before;
      read_documents(
          sources[cur_source],
          [&](Document&& d) {
            if (d.text.empty()) {
              ++st.documents_empty;
              return;
            }
            st.text_bytes += d.text.size();
            per[cur_source].text_bytes += d.text.size();
            ++per[cur_source].documents;
            batch_size_bytes += d.text.size();
            batch.push_back(std::move(d.text));
            if (batch_size_bytes >= opts.batch_bytes) flush();
          },
          [&](uint64_t consumed) {
            if (bar)
              bar->update(static_cast<double>(base + std::min(consumed, source_input[cur_source])),
                          fmt_count(st.tokens_train + st.tokens_val) + " tok");
          });
      flush();
      done_before += source_input[cur_source];
    }
    if (have_held) {
      if (opts.val_fraction > 0 && st.documents_val == 0 && doc_index >= 2) held_val = true;
      write_doc(held, held_val);
    }
    const uint64_t docs = st.documents_train + st.documents_val;
    if (docs == 0) {
      std::string names;
      for (const auto& s : sources) names += (names.empty() ? "" : ", ") + s.path;
      fail(names + ": empty corpus (no non-empty documents found" +
           (st.documents_empty ? ", " + std::to_string(st.documents_empty) + " empty ones skipped)" : ")"));
    }
    if (bar) bar->finish(fmt_count(st.tokens_train + st.tokens_val) + " tok");

    train.commit();
    val.commit();
    save_token_counts(out + "/token_counts.json", counts, "train");
    st.input_bytes = total_bytes;
    st.seconds = bar ? bar->elapsed_s() : 0;

    write_file_atomic(out + "/meta.json", shards_meta(opts, tok, sources, source_input, per, st).dump(2) + "\n");
  } catch (...) {
    if (created_dir) ::rmdir(out.c_str());  // only succeeds when empty
    throw;
  }
  return st;
}

CorpusMeta read_corpus_meta(const std::string& meta_path) {
  namespace jf = json_fields;
  const nlohmann::json j = jf::parse_file(meta_path);
  jf::Object o(j, meta_path);
  CorpusMeta m;
  jf::Object docs = o.object("documents");
  m.documents_train = docs.req<uint64_t>("train", "a count");
  m.documents_val = docs.req<uint64_t>("val", "a count");
  jf::Object toks = o.object("tokens");
  m.tokens_train = toks.req<uint64_t>("train", "a count");
  m.tokens_val = toks.req<uint64_t>("val", "a count");
  o.opt("text_bytes", m.text_bytes, "a count");
  if (const nlohmann::json* srcs = o.opt_array("sources")) {
    for (size_t i = 0; i < srcs->size(); ++i) {
      jf::Object src((*srcs)[i], meta_path + " [" + jf::index_key("sources", i) + "]");
      CorpusMeta::Source s;
      src.opt("kind", s.kind);
      src.opt("path", s.path);
      src.opt("documents", s.documents, "a count");
      src.opt("tokens", s.tokens, "a count");
      m.sources.push_back(std::move(s));
    }
  }
  if (const nlohmann::json* split = o.opt_object("split")) {
    jf::Object sp(*split, meta_path + " [split]");
    m.has_split = true;
    sp.opt("val_fraction", m.val_fraction);
    sp.opt("seed", m.split_seed, "a count");
  }
  return m;
}

std::string corpus_stats_report(const std::string& dir, int top_n, const Tokenizer& tok) {
  const std::string meta_path = dir + "/meta.json";
  if (!is_directory(dir)) fail(dir + ": not a directory (expected the output of `circuitlab prepare`)");
  const CorpusMeta meta = read_corpus_meta(meta_path);
  const uint64_t docs_train = meta.documents_train, docs_val = meta.documents_val;
  const uint64_t meta_train = meta.tokens_train, meta_val = meta.tokens_val;
  TokenShard train(dir + "/train.bin"), val(dir + "/val.bin");
  if (train.size() != meta_train)
    fail(train.path() + ": " + std::to_string(train.size()) + " tokens, meta.json says " + std::to_string(meta_train));
  if (val.size() != meta_val)
    fail(val.path() + ": " + std::to_string(val.size()) + " tokens, meta.json says " + std::to_string(meta_val));
  std::vector<uint64_t> counts = count_tokens(train);
  uint64_t eot_train = counts[kEndOfText], eot_val = count_tokens(val)[kEndOfText];
  const uint64_t text_bytes = meta.text_bytes;

  std::string s;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    s += line;
  };
  add("corpus: %s\n", dir.c_str());
  for (const auto& src : meta.sources)
    add("  source %-11s %s  (%s docs, %s tokens)\n", src.kind.c_str(), src.path.c_str(),
        fmt_count(src.documents).c_str(), fmt_count(src.tokens).c_str());
  add("documents: %s train, %s val (%s total)\n", fmt_count(docs_train).c_str(), fmt_count(docs_val).c_str(),
      fmt_count(docs_train + docs_val).c_str());
  add("tokens:    %s train, %s val (%s total, incl. one EOT per document)\n", fmt_count(train.size()).c_str(),
      fmt_count(val.size()).c_str(), fmt_count(train.size() + val.size()).c_str());
  add("EOT count: %s train, %s val\n", fmt_count(eot_train).c_str(), fmt_count(eot_val).c_str());
  add("text:      %s bytes, %.3f bytes/token\n", fmt_count(text_bytes).c_str(),
      train.size() + val.size() ? static_cast<double>(text_bytes) / static_cast<double>(train.size() + val.size()) : 0.0);
  uint64_t distinct = 0;
  for (uint64_t c : counts) distinct += c > 0;
  add("distinct train tokens: %s of %d\n", fmt_count(distinct).c_str(), tok.vocab_size());
  if (meta.has_split)
    add("split:     document-level, val_fraction %g, seed %llu\n", meta.val_fraction,
        static_cast<unsigned long long>(meta.split_seed));
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 65536; ++i)
    if (counts[i]) ids.push_back(i);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return counts[a] > counts[b]; });
  if (top_n > 0 && !ids.empty()) {
    add("top %d train tokens:\n", std::min<int>(top_n, static_cast<int>(ids.size())));
    add("  %4s %7s %12s %7s  %s\n", "rank", "id", "count", "share", "token");
    for (int r = 0; r < top_n && r < static_cast<int>(ids.size()); ++r) {
      int32_t id = ids[r];
      std::string str = id < tok.vocab_size() ? tok.token_str(id) : "?";
      nlohmann::json js = str;  // JSON escaping shows spaces/newlines unambiguously
      add("  %4d %7d %12s %6.2f%%  %s\n", r + 1, id, fmt_count(counts[id]).c_str(),
          100.0 * static_cast<double>(counts[id]) / static_cast<double>(train.size()), js.dump().c_str());
    }
  }
  return s;
}

}  // namespace circuitlab::data
