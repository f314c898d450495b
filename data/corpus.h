// Corpus readers: stream documents (one at a time, bounded memory) out of text sources —
// .txt files and folders, JSONL with a "text" field, archives in the OpenWebText layout
// (tar.xz whose *.xz members are tar.xz of .txt documents; plain tar/tar.gz/tar.xz of .txt
// too), the Brown corpus (POS tags stripped) and nlp-corpus. Not a tokenizer (tokenizer.h).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace circuitlab::data {

enum class SourceKind { Auto, Text, Jsonl, Archive, Brown, NlpCorpus, Folder };
const char* source_kind_name(SourceKind k);
// "txt", "jsonl", "archive" (or "owt"), "brown", "nlp-corpus", "folder", "auto"; Error otherwise.
SourceKind parse_source_kind(const std::string& name);

struct Document {
  std::string name;  // where it came from: file path, "file:line", "archive:member[:member]"
  std::string text;  // raw UTF-8 as stored (invalid bytes are kept; the tokenizer has a rule)
};

// Called once per document in source order; `consumed` is how many input bytes of the
// current file have been read so far (for the progress bar).
using DocumentFn = std::function<void(Document&& doc)>;
using ProgressFn = std::function<void(uint64_t consumed_bytes)>;

struct CorpusSource {
  std::string path;
  SourceKind kind = SourceKind::Auto;
};

// Resolves Auto by looking at the path: a folder with CONTENTS + ca01 is Brown, a folder with
// builds/doc-0.json is nlp-corpus, other folders are walked (Folder); files by extension
// (.txt/.text/.md -> Text, .jsonl/.ndjson -> Jsonl, .tar/.tar.xz/.txz/.tar.gz/.tgz/.xz -> Archive).
// Error naming the path when it does not exist, cannot be read, or has an unknown extension.
SourceKind detect_source_kind(const std::string& path);

// Input bytes the source will read (sum of file sizes), for progress totals.
uint64_t source_bytes(const CorpusSource& src);

// Streams every document of `src`. Errors name the file (and line/member) and the problem.
// Folder: files sorted by path, recursively; .txt/.jsonl/archives inside are read by kind,
// other files are skipped. `progress` receives cumulative input bytes of this source.
void read_documents(const CorpusSource& src, const DocumentFn& fn, const ProgressFn& progress = {});

// The embedded default corpus: Brown (<assets>/corpus/brown) then nlp-corpus
// (<assets>/corpus/nlp-corpus).
std::vector<CorpusSource> default_corpus_sources();

// Brown corpus form C (tagged) -> running text: tags after the last '/' removed, `` and ''
// become ", no space before closing punctuation or after opening brackets, sentences of a
// paragraph joined by spaces, paragraphs by a blank line.
std::string brown_detag(const std::string& tagged);

}  // namespace circuitlab::data
