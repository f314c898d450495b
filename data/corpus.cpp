// Corpus readers (see corpus.h). Archives go through libarchive; a nested archive member is
// read straight out of its parent through libarchive's callback interface, so neither level
// is ever unpacked to disk or held whole in memory.
#include "data/corpus.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/tokenizer.h"

namespace circuitlab::data {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_text_name(const std::string& n) {
  std::string l = lower(n);
  return ends_with(l, ".txt") || ends_with(l, ".text") || ends_with(l, ".md");
}
bool is_jsonl_name(const std::string& n) {
  std::string l = lower(n);
  return ends_with(l, ".jsonl") || ends_with(l, ".ndjson");
}
bool is_archive_name(const std::string& n) {
  std::string l = lower(n);
  return ends_with(l, ".tar") || ends_with(l, ".tar.xz") || ends_with(l, ".txz") ||
         ends_with(l, ".tar.gz") || ends_with(l, ".tgz") || ends_with(l, ".tar.bz2") ||
         ends_with(l, ".tar.zst") || ends_with(l, ".xz");
}

void check_readable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    fail(path + ": cannot read (" + std::string(std::strerror(errno)) + ")");
  if (::access(path.c_str(), R_OK) != 0)
    fail(path + ": cannot read (" + std::string(std::strerror(errno)) + ")");
}

bool is_brown_dir(const std::string& dir) {
  return file_exists(dir + "/CONTENTS") && file_exists(dir + "/ca01");
}
bool is_nlp_corpus_dir(const std::string& dir) { return file_exists(dir + "/builds/doc-0.json"); }

// ---- archives ----

struct ArchiveReader {
  archive* a = archive_read_new();
  ArchiveReader() {
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
  }
  ~ArchiveReader() { archive_read_free(a); }
  std::string error() const {
    const char* e = archive_error_string(a);
    return e ? e : "unknown libarchive error";
  }
};

// Pulls the current member of a parent archive as the byte stream of a nested archive.
struct MemberStream {
  archive* parent;
  std::vector<char> buf = std::vector<char>(1 << 16);
};
la_ssize_t member_read(archive* self, void* client, const void** out) {
  auto* m = static_cast<MemberStream*>(client);
  la_ssize_t n = archive_read_data(m->parent, m->buf.data(), m->buf.size());
  if (n < 0) {
    const char* e = archive_error_string(m->parent);
    archive_set_error(self, EIO, "%s", e ? e : "read error in the enclosing archive");
    return -1;
  }
  *out = m->buf.data();
  return n;
}

void read_member_data(archive* a, const std::string& where, std::string& out) {
  out.clear();
  char buf[1 << 16];
  while (true) {
    la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) {
      const char* e = archive_error_string(a);
      fail(where + ": unreadable archive member (" + std::string(e ? e : "read error") + ")");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Walks one (possibly nested) archive: .txt members are documents, *.xz / *.tar* members are
// archives of their own (OpenWebText's urlsf_subset*_data.xz), anything else is skipped.
void walk_archive(ArchiveReader& r, const std::string& where, const DocumentFn& fn,
                  const std::function<void()>& tick, int depth) {
  archive_entry* e;
  int rc;
  std::string last = "(start)";
  while ((rc = archive_read_next_header(r.a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    const char* pn = archive_entry_pathname(e);
    std::string name = pn ? pn : "";
    last = name;
    std::string here = where + ":" + name;
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    if (is_text_name(name)) {
      Document d;
      d.name = here;
      read_member_data(r.a, here, d.text);
      fn(std::move(d));
    } else if (is_archive_name(name) && depth < 4) {
      ArchiveReader inner;
      MemberStream ms{r.a};
      if (archive_read_open(inner.a, &ms, nullptr, member_read, nullptr) != ARCHIVE_OK)
        fail(here + ": unreadable archive member (" + inner.error() + ")");
      walk_archive(inner, here, fn, tick, depth + 1);
    } else {
      archive_read_data_skip(r.a);
    }
    if (tick) tick();
  }
  if (rc != ARCHIVE_EOF)
    fail(where + ": corrupt archive after member \"" + last + "\" (" + r.error() + ")");
}

void read_archive(const std::string& path, const DocumentFn& fn, const ProgressFn& progress) {
  check_readable(path);
  ArchiveReader r;
  if (archive_read_open_filename(r.a, path.c_str(), 1 << 16) != ARCHIVE_OK)
    fail(path + ": cannot open archive (" + r.error() + ")");
  auto tick = [&] {
    if (progress) progress(static_cast<uint64_t>(archive_filter_bytes(r.a, -1)));
  };
  walk_archive(r, path, fn, tick, 0);
}

// ---- plain files ----

void read_text_file(const std::string& path, const DocumentFn& fn) {
  check_readable(path);
  Document d;
  d.name = path;
  d.text = read_file(path);
  fn(std::move(d));
}

void read_jsonl(const std::string& path, const DocumentFn& fn, const ProgressFn& progress) {
  check_readable(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file (" + std::string(std::strerror(errno)) + ")");
  std::string line;
  uint64_t line_no = 0, consumed = 0;
  while (std::getline(in, line)) {
    ++line_no;
    consumed += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      fail(path + ":" + std::to_string(line_no) + ": not valid JSON (expected one object per line)");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail(path + ":" + std::to_string(line_no) + ": expected an object with a string field \"text\"");
    Document d;
    d.name = path + ":" + std::to_string(line_no);
    d.text = j["text"].get<std::string>();
    fn(std::move(d));
    if (progress && (line_no & 1023) == 0) progress(consumed);
  }
  if (in.bad()) fail(path + ": read failed");
}

std::vector<std::string> brown_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    // Form C files: c + category letter a..r + two digits (ca01 .. cr09).
    if (n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && std::isdigit((unsigned char)n[2]) &&
        std::isdigit((unsigned char)n[3]))
      files.push_back(it->path().string());
  }
  if (ec) fail(dir + ": cannot list directory (" + ec.message() + ")");
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(dir + ": no Brown corpus files (expected ca01 .. cr09)");
  return files;
}

std::vector<std::string> nlp_corpus_files(const std::string& dir) {
  std::vector<std::pair<int, std::string>> files;
  std::error_code ec;
  std::string builds = dir + "/builds";
  for (fs::directory_iterator it(builds, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.rfind("doc-", 0) == 0 && ends_with(n, ".json")) {
      std::string num = n.substr(4, n.size() - 9);
      if (!num.empty() && std::all_of(num.begin(), num.end(), [](char c) { return std::isdigit((unsigned char)c); }))
        files.push_back({std::stoi(num), it->path().string()});
    }
  }
  if (ec) fail(builds + ": cannot list directory (" + ec.message() + ")");
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(builds + ": no nlp-corpus files (expected doc-<n>.json)");
  std::vector<std::string> out;
  for (auto& f : files) out.push_back(f.second);
  return out;
}

void read_nlp_corpus_file(const std::string& path, const DocumentFn& fn) {
  check_readable(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception&) {
    fail(path + ": not valid JSON (expected an array of sentences)");
  }
  if (!j.is_array()) fail(path + ": expected a JSON array of sentences");
  Document d;
  d.name = path;
  for (const auto& s : j) {
    if (!s.is_string()) fail(path + ": expected a JSON array of strings");
    if (!d.text.empty()) d.text += '\n';
    d.text += s.get<std::string>();
  }
  fn(std::move(d));
}

std::vector<std::string> folder_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) fail(dir + ": cannot read directory (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) fail(dir + ": cannot read directory (" + ec.message() + ")");
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    std::string p = it->path().string();
    if (is_text_name(p) || is_jsonl_name(p) || is_archive_name(p)) files.push_back(p);
  }
  if (ec) fail(dir + ": cannot read directory (" + ec.message() + ")");
  std::sort(files.begin(), files.end());
  return files;
}

uint64_t file_size_or_zero(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

const char* source_kind_name(SourceKind k) {
  switch (k) {
    case SourceKind::Auto: return "auto";
    case SourceKind::Text: return "txt";
    case SourceKind::Jsonl: return "jsonl";
    case SourceKind::Archive: return "archive";
    case SourceKind::Brown: return "brown";
    case SourceKind::NlpCorpus: return "nlp-corpus";
    case SourceKind::Folder: return "folder";
  }
  return "?";
}

SourceKind parse_source_kind(const std::string& name) {
  if (name == "auto") return SourceKind::Auto;
  if (name == "txt" || name == "text") return SourceKind::Text;
  if (name == "jsonl") return SourceKind::Jsonl;
  if (name == "archive" || name == "owt" || name == "openwebtext") return SourceKind::Archive;
  if (name == "brown") return SourceKind::Brown;
  if (name == "nlp-corpus") return SourceKind::NlpCorpus;
  if (name == "folder") return SourceKind::Folder;
  fail("format: unknown source kind \"" + name + "\" (expected auto, txt, jsonl, archive, brown, nlp-corpus, folder)");
}

SourceKind detect_source_kind(const std::string& path) {
  check_readable(path);
  if (is_directory(path)) {
    if (is_brown_dir(path)) return SourceKind::Brown;
    if (is_nlp_corpus_dir(path)) return SourceKind::NlpCorpus;
    return SourceKind::Folder;
  }
  if (is_text_name(path)) return SourceKind::Text;
  if (is_jsonl_name(path)) return SourceKind::Jsonl;
  if (is_archive_name(path)) return SourceKind::Archive;
  fail(path + ": unknown corpus file type (expected .txt, .jsonl, .tar[.xz|.gz] or .xz; "
       "or give its kind: `format`)");
}

uint64_t source_bytes(const CorpusSource& src) {
  SourceKind k = src.kind == SourceKind::Auto ? detect_source_kind(src.path) : src.kind;
  uint64_t total = 0;
  switch (k) {
    case SourceKind::Brown:
      for (auto& f : brown_files(src.path)) total += file_size_or_zero(f);
      break;
    case SourceKind::NlpCorpus:
      for (auto& f : nlp_corpus_files(src.path)) total += file_size_or_zero(f);
      break;
    case SourceKind::Folder:
      for (auto& f : folder_files(src.path)) total += file_size_or_zero(f);
      break;
    default:
      total = file_size_or_zero(src.path);
  }
  return total;
}

void read_documents(const CorpusSource& src, const DocumentFn& fn, const ProgressFn& progress) {
  SourceKind k = src.kind == SourceKind::Auto ? detect_source_kind(src.path) : src.kind;
  check_readable(src.path);
  uint64_t done = 0;
  auto each_file = [&](const std::vector<std::string>& files, auto&& read_one) {
    for (const auto& f : files) {
      uint64_t base = done;
      read_one(f, [&](uint64_t c) {
        if (progress) progress(base + c);
      });
      done = base + file_size_or_zero(f);
      if (progress) progress(done);
    }
  };
  switch (k) {
    case SourceKind::Text:
      read_text_file(src.path, fn);
      break;
    case SourceKind::Jsonl:
      read_jsonl(src.path, fn, progress);
      break;
    case SourceKind::Archive:
      read_archive(src.path, fn, progress);
      break;
    case SourceKind::Brown:
      each_file(brown_files(src.path), [&](const std::string& f, const ProgressFn&) {
        check_readable(f);
        Document d;
        d.name = f;
        d.text = brown_detag(read_file(f));
        fn(std::move(d));
      });
      break;
    case SourceKind::NlpCorpus:
      each_file(nlp_corpus_files(src.path),
                [&](const std::string& f, const ProgressFn&) { read_nlp_corpus_file(f, fn); });
      break;
    case SourceKind::Folder:
      each_file(folder_files(src.path), [&](const std::string& f, const ProgressFn& p) {
        if (is_text_name(f)) read_text_file(f, fn);
        else if (is_jsonl_name(f)) read_jsonl(f, fn, p);
        else read_archive(f, fn, p);
      });
      break;
    case SourceKind::Auto:
      break;
  }
  if (progress) progress(source_bytes({src.path, k}));
}

std::vector<CorpusSource> default_corpus_sources() {
  std::string a = assets_dir() + "/corpus";
  return {{a + "/brown", SourceKind::Brown}, {a + "/nlp-corpus", SourceKind::NlpCorpus}};
}

std::string brown_detag(const std::string& tagged) {
  std::string out, para;
  bool no_space_next = true;  // at the start of a paragraph, or after an opening bracket
  auto flush_para = [&] {
    if (para.empty()) return;
    if (!out.empty()) out += "\n\n";
    out += para;
    para.clear();
    no_space_next = true;
  };
  size_t pos = 0;
  bool open_quote = false;
  while (pos <= tagged.size()) {
    size_t eol = tagged.find('\n', pos);
    if (eol == std::string::npos) eol = tagged.size();
    std::string_view line(tagged.data() + pos, eol - pos);
    pos = eol + 1;
    // A blank line ends a paragraph; a line starting with a tab starts one.
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      flush_para();
      continue;
    }
    if (line[0] == '\t') flush_para();
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      std::string_view tok = line.substr(i, j - i);
      i = j;
      size_t slash = tok.rfind('/');
      std::string w(slash == std::string_view::npos || slash == 0 ? tok : tok.substr(0, slash));
      bool attach_left = false, attach_right = false;
      if (w == "``") { w = "\""; attach_right = true; open_quote = true; }
      else if (w == "''") { w = "\""; attach_left = true; open_quote = false; }
      else if (w == "'" && open_quote) { attach_left = true; }
      else if (w == "," || w == "." || w == ";" || w == ":" || w == "?" || w == "!" || w == ")" ||
               w == "]" || w == "}" || w == "'s" || w == "n't" || w == "'" || w == "%")
        attach_left = true;
      else if (w == "(" || w == "[" || w == "{" || w == "$")
        attach_right = true;
      if (!para.empty() && !attach_left && !no_space_next) para += ' ';
      para += w;
      no_space_next = attach_right;
    }
  }
  flush_para();
  return out;
}

}  // namespace circuitlab::data
