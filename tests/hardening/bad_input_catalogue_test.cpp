// The bad-input catalogue: malformed files and arguments for every format circuitlab reads
// (safetensors, config.json / model dirs, tokenizer files, corpora, shards) and the CLI, each run
// through the real `circuitlab` binary ($CIRCUITLAB_BIN). Each case asserts: a non-zero exit that
// is not a crash, exactly one line on stderr naming the file/field, and no partial output.
// Not a fuzzer (fuzz/) and not a test of the happy paths (each layer's own tests).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "models/hooked_transformer.h"
#include "models/model_dir.h"
#include "tests/common/files.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using circuitlab::testing::env_or;
using circuitlab::testing::RunResult;
using circuitlab::testing::slurp;
using circuitlab::testing::spit;
using circuitlab::testing::source_dir;
std::string bin() { return circuitlab::testing::circuitlab_bin(); }

// ---- safetensors pieces: read a valid file, rewrite its header with a lie -------------------
struct Safetensors {
  json header;
  std::string data;  // the data section
};

Safetensors read_st(const std::string& path) {
  std::string b = slurp(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(b[i]);
  return {json::parse(b.substr(8, n)), b.substr(8 + n)};
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

std::string st_bytes(const Safetensors& st) {
  std::string h = st.header.dump();
  return le64(h.size()) + h + st.data;
}

std::string le_i32s(const std::vector<int32_t>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// ---- the catalogue ---------------------------------------------------------------------------
struct Case {
  std::string name;
  // Builds the inputs inside `dir` (a fresh copy of the fixtures) and returns the arguments
  // (after the binary), run with `dir` as working directory.
  std::function<std::vector<std::string>(const std::string& dir)> setup;
  std::vector<std::string> expect;     // substrings the one stderr line must contain
  std::vector<std::string> no_output;  // paths (relative to dir) that must not exist afterwards
  std::string stdin_text;
};

// gtest prints parameters on failure: the case name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Catalogue : public ::testing::TestWithParam<Case> {
 public:
  static void SetUpTestSuite() {
    tmp_ = new circuitlab::testing::TempDir("hardening");
    base_ = tmp_->path();
    // A valid toy model dir written by the real writer (the inputs below are lies about it).
    circuitlab::models::ModelConfig c;
    c.n_layers = 1; c.d_model = 8; c.n_heads = 2; c.d_head = 4; c.n_ctx = 8; c.d_vocab = 1000;
    circuitlab::models::HookedTransformer m(c);
    circuitlab::models::save_model_dir(m, (base_ / "fixtures/model").string());
    // A valid tokenizer dir (copied so cases can corrupt one file).
    const std::string tok = env_or("CIRCUITLAB_ASSETS", source_dir() + "/assets") + "/tokenizer";
    fs::create_directories(base_ / "fixtures/tokenizer");
    for (const char* f : {"encoder.json", "vocab.bpe"})
      fs::copy_file(tok + "/" + f, base_ / "fixtures/tokenizer" / f);
    // A small text corpus (the shard cases prepare it with the real `prepare`, see prepared_case()).
    spit((base_ / "fixtures/text/a.txt").string(), "The cat sat on the mat.\n\nIt was a sunny day in the park.\n");
    spit((base_ / "fixtures/text/b.txt").string(), "Another document, with other words: apples and pears.\n");
  }
  static void TearDownTestSuite() { delete tmp_; }
  static circuitlab::testing::TempDir* tmp_;
  static fs::path base_;
};
circuitlab::testing::TempDir* Catalogue::tmp_ = nullptr;
fs::path Catalogue::base_;

// `circuitlab ARGS` in `dir` (at most 120 s), stdin_text on its stdin.
RunResult run_cli(const std::string& dir, const std::vector<std::string>& args, const std::string& stdin_text) {
  spit(dir + "/.stdin", stdin_text);
  std::vector<std::string> argv{"timeout", "120", bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  circuitlab::testing::RunOptions o;
  o.stdin_file = dir + "/.stdin";
  o.cwd = dir;
  RunResult r = circuitlab::testing::run_program(argv, o);
  fs::remove(dir + "/.stdin");
  return r;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) out.push_back(l);
  return out;
}

// Leftovers of an interrupted atomic write (AtomicFile's "<path>.tmp.<pid>").
std::vector<std::string> temp_leftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  return out;
}

TEST_P(Catalogue, FailsWithOneLineNamingTheProblem) {
  const Case& c = GetParam();
  const std::string dir = (base_ / ("case-" + c.name)).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(base_ / "fixtures", dir, fs::copy_options::recursive);
  const std::vector<std::string> args = c.setup(dir);
  if (HasFatalFailure()) return;
  const RunResult r = run_cli(dir, args, c.stdin_text);

  std::vector<std::string> problems;
  if (r.exit_code == 0) problems.push_back("exit code 0 (expected a failure)");
  if (r.exit_code >= 124) problems.push_back("exit code " + std::to_string(r.exit_code) + " (a crash, signal or timeout)");
  const auto err_lines = lines(r.err);
  if (err_lines.size() != 1) problems.push_back(std::to_string(err_lines.size()) + " lines on stderr (expected 1)");
  for (const auto& e : c.expect)
    if (r.err.find(e) == std::string::npos) problems.push_back("stderr does not name \"" + e + "\"");
  for (const auto& p : c.no_output)
    if (fs::exists(fs::path(dir) / p)) problems.push_back("partial output left behind: " + p);
  for (const auto& p : temp_leftovers(dir)) problems.push_back("temporary file left behind: " + p);

  std::string report;
  for (const auto& p : problems) report += "\n  - " + p;
  EXPECT_TRUE(problems.empty()) << "case " << c.name << ": " << bin() << " exited " << r.exit_code << report
                                << "\n  stderr: " << r.err;
  fs::remove_all(dir);
}

// ---- case builders -----------------------------------------------------------------------------
using Args = std::vector<std::string>;

// Rewrites model/model.safetensors through `edit` and runs `inspect` on the model dir
// (inspect maps and validates every tensor and checks them against config.json).
std::function<Args(const std::string&)> st_case(std::function<void(Safetensors&)> edit, Args args = {}) {
  return [edit, args](const std::string& d) {
    Safetensors st = read_st(d + "/model/model.safetensors");
    edit(st);
    spit(d + "/model/model.safetensors", st_bytes(st));
    return args.empty() ? Args{"inspect", "--model", "model"} : args;
  };
}

std::function<Args(const std::string&)> config_case(std::function<void(json&)> edit, Args args = {}) {
  return [edit, args](const std::string& d) {
    json c = json::parse(slurp(d + "/model/config.json"));
    edit(c);
    spit(d + "/model/config.json", c.dump(2));
    return args.empty() ? Args{"inspect", "--model", "model"} : args;
  };
}

std::function<Args(const std::string&)> raw_file_case(std::string rel, std::string bytes, Args args) {
  return [rel, bytes, args](const std::string& d) {
    spit(d + "/" + rel, bytes);
    return args;
  };
}

// A valid prepared corpus in <dir>/prepared made by the real `prepare`; then `rel` is replaced
// by `bytes` (empty rel: nothing replaced) and `args` run. Only the shard cases pay for it.
std::function<Args(const std::string&)> prepared_case(std::string rel, std::string bytes, Args args) {
  return [rel, bytes, args](const std::string& d) {
    circuitlab::testing::RunOptions o;
    o.cwd = d;
    const RunResult r = circuitlab::testing::run_program(
        {bin(), "prepare", "--quiet", "--val-fraction", "0.5", "--out", "prepared", "text"}, o);
    EXPECT_EQ(r.exit_code, 0) << "fixture: prepare in " << d << ": " << r.err;
    if (!rel.empty()) spit(d + "/" + rel, bytes);
    return args;
  };
}

Args prepare(const std::string& src) { return {"prepare", "--quiet", "--out", "out", src}; }
const std::vector<std::string> kNoPrepared = {"out/train.bin", "out/val.bin", "out/meta.json", "out/token_counts.json"};

std::string llmc_shard(int32_t magic, int32_t version, int32_t claimed, int32_t actual) {
  std::vector<int32_t> h(256, 0);
  h[0] = magic; h[1] = version; h[2] = claimed;
  return le_i32s(h) + std::string(2 * static_cast<size_t>(actual), '\x01');
}

std::vector<Case> catalogue() {
  std::vector<Case> v;
  // --- safetensors -----------------------------------------------------------------------------
  v.push_back({"safetensors_truncated_to_5_bytes",
               [](const std::string& d) {
                 spit(d + "/model/model.safetensors", slurp(d + "/model/model.safetensors").substr(0, 5));
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors", "truncated"}});
  v.push_back({"safetensors_truncated_mid_data",
               [](const std::string& d) {
                 std::string b = slurp(d + "/model/model.safetensors");
                 spit(d + "/model/model.safetensors", b.substr(0, b.size() - 100));
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors"}});
  v.push_back({"safetensors_header_length_lies_past_eof",
               [](const std::string& d) {
                 std::string b = slurp(d + "/model/model.safetensors");
                 spit(d + "/model/model.safetensors", le64(b.size() * 4) + b.substr(8));
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors", "header length"}});
  v.push_back({"safetensors_header_length_huge",
               [](const std::string& d) {
                 std::string b = slurp(d + "/model/model.safetensors");
                 spit(d + "/model/model.safetensors", le64(~0ull) + b.substr(8));
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors", "header length"}});
  v.push_back({"safetensors_header_not_json",
               [](const std::string& d) {
                 spit(d + "/model/model.safetensors", le64(9) + "{\"a\": [1," + std::string(64, '\0'));
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors", "JSON"}});
  v.push_back({"safetensors_oversized_data_offsets",
               st_case([](Safetensors& st) { st.header["embed.W_E"]["data_offsets"][1] = 1ull << 40; }),
               {"model.safetensors", "embed.W_E"}});
  v.push_back({"safetensors_extra_trailing_bytes",
               st_case([](Safetensors& st) { st.data += std::string(4096, '\x7f'); }), {"model.safetensors"}});
  v.push_back({"safetensors_unknown_dtype", st_case([](Safetensors& st) { st.header["embed.W_E"]["dtype"] = "F99"; }),
               {"model.safetensors", "embed.W_E", "dtype"}});
  v.push_back({"safetensors_dtype_size_mismatch",
               st_case([](Safetensors& st) { st.header["embed.W_E"]["dtype"] = "F64"; }), {"model.safetensors", "embed.W_E"}});
  v.push_back({"safetensors_shape_transposed",  // same byte count, wrong layout for the config
               st_case([](Safetensors& st) { st.header["embed.W_E"]["shape"] = {8, 1000}; }),
               {"model.safetensors", "embed.W_E", "shape"}});
  v.push_back({"safetensors_negative_shape",
               st_case([](Safetensors& st) { st.header["unembed.b_U"]["shape"] = {-1000}; }),
               {"model.safetensors", "unembed.b_U"}});
  v.push_back({"safetensors_tensor_renamed",
               st_case([](Safetensors& st) {
                 st.header["embed.W_X"] = st.header["embed.W_E"];
                 st.header.erase("embed.W_E");
               }),
               {"model.safetensors", "embed.W_"}});
  v.push_back({"safetensors_overlapping_offsets",
               st_case([](Safetensors& st) { st.header["ln_final.b"]["data_offsets"] = st.header["ln_final.w"]["data_offsets"]; }),
               {"model.safetensors", "ln_final"}});
  v.push_back({"safetensors_header_is_array", st_case([](Safetensors& st) { st.header = json::array({1, 2}); }),
               {"model.safetensors", "object"}});
  // --- config.json / model dirs ------------------------------------------------------------------
  v.push_back({"config_not_json",
               raw_file_case("model/config.json", "{\"n_layers\": 1,,}", {"inspect", "--model", "model"}),
               {"config.json", "JSON"}});
  v.push_back({"config_invalid_utf8",
               raw_file_case("model/config.json", "{\"act_fn\": \"gelu\xff\xfe\", \"n_layers\": 1}",
                             {"inspect", "--model", "model"}),
               {"config.json"}});
  v.push_back({"config_wrong_type", config_case([](json& c) { c["d_model"] = "eight"; }), {"config.json", "d_model"}});
  // n_heads is optional in TransformerLens (d_model / d_head); d_head is not.
  v.push_back({"config_missing_field", config_case([](json& c) { c.erase("d_head"); }), {"config.json", "d_head"}});
  v.push_back({"config_zero_heads", config_case([](json& c) { c["n_heads"] = 0; }), {"config.json", "n_heads"}});
  v.push_back({"config_bad_normalization", config_case([](json& c) { c["normalization_type"] = "RMS"; }),
               {"config.json", "normalization_type"}});
  v.push_back({"config_d_model_lies_about_tensors", config_case([](json& c) { c["d_model"] = 16; }),
               {"model.safetensors", "shape"}});
  Case wrap{"config_int_overflow_wraps", config_case([](json& c) { c["n_ctx"] = 4294967304ull; }),  // 2^32 + 8
            {"config.json", "n_ctx"}};
  v.push_back(wrap);
  Case flt{"config_float_overflows_int", config_case([](json& c) { c["n_layers"] = 1e30; }), {"config.json", "n_layers"}};
  v.push_back(flt);
  Case huge{"config_huge_vocab_checked_before_allocating", config_case([](json& c) {
              c["d_vocab"] = 2000000000;
              c["d_vocab_out"] = 2000000000;
            }),
            {"config.json", "d_vocab"}};
  v.push_back(huge);
  v.push_back({"model_dir_missing", [](const std::string&) { return Args{"inspect", "--model", "no/such/model"}; },
               {"no/such/model"}});
  v.push_back({"model_dir_without_safetensors",
               [](const std::string& d) {
                 fs::remove(d + "/model/model.safetensors");
                 return Args{"inspect", "--model", "model"};
               },
               {"model.safetensors", "missing"}});
  v.push_back({"forward_token_id_out_of_range",
               [](const std::string&) { return Args{"forward", "--model", "model", "--no-prepend-bos", "--tokens", "5 99999", "--npy", "out.npy"}; },
               {"99999"}, {"out.npy"}});
  v.push_back({"forward_n_ctx_overflow",  // 9 tokens into n_ctx 8
               [](const std::string&) {
                 return Args{"forward", "--model", "model", "--no-prepend-bos", "--tokens", "1 2 3 4 5 6 7 8 9", "--npy", "out.npy"};
               },
               {"n_ctx"}, {"out.npy"}});
  v.push_back({"forward_npy_unwritable",
               [](const std::string& d) {
                 spit(d + "/blocker", "a file where a directory should be");
                 return Args{"forward", "--model", "model", "--no-prepend-bos", "--tokens", "1 2", "--npy", "blocker/logits.npy"};
               },
               {"blocker/logits.npy"}});
  v.push_back({"export_out_unwritable",
               [](const std::string& d) {
                 spit(d + "/blocker", "x");
                 return Args{"export", "--model", "model", "--out", "blocker/exported"};
               },
               {"blocker/exported"}});
  // --- tokenizer --------------------------------------------------------------------------------
  v.push_back({"decode_id_out_of_range", [](const std::string&) { return Args{"decode"}; }, {"50257"}, {}, "464 50257\n"});
  v.push_back({"decode_not_an_id", [](const std::string&) { return Args{"decode"}; }, {"abc"}, {}, "464 abc\n"});
  v.push_back({"encode_tokenizer_dir_missing",
               [](const std::string&) { return Args{"encode", "--tokenizer", "no-tokenizer"}; }, {"no-tokenizer"}, {},
               "hello\n"});
  v.push_back({"encode_encoder_json_corrupt",
               raw_file_case("tokenizer/encoder.json", "{\"!\": 0, \"\\\"\": ", {"encode", "--tokenizer", "tokenizer"}),
               {"encoder.json"}, {}, "hello\n"});
  v.push_back({"encode_vocab_bpe_truncated",
               [](const std::string& d) {
                 spit(d + "/tokenizer/vocab.bpe", "#version: 0.2\nĠ t\nĠ\n");
                 return Args{"encode", "--tokenizer", "tokenizer"};
               },
               {"vocab.bpe"}, {}, "hello\n"});
  // --- corpora (prepare) ------------------------------------------------------------------------
  v.push_back({"prepare_empty_corpus", raw_file_case("empty.txt", "", prepare("empty.txt")), {"empty.txt", "empty"},
               kNoPrepared});
  v.push_back({"prepare_jsonl_bad_line", raw_file_case("d.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n", prepare("d.jsonl")),
               {"d.jsonl:2"}, kNoPrepared});
  v.push_back({"prepare_jsonl_missing_text", raw_file_case("d.jsonl", "{\"body\": \"no text field\"}\n", prepare("d.jsonl")),
               {"d.jsonl:1", "text"}, kNoPrepared});
  v.push_back({"prepare_jsonl_text_not_string", raw_file_case("d.jsonl", "{\"text\": 42}\n", prepare("d.jsonl")),
               {"d.jsonl:1", "text"}, kNoPrepared});
  v.push_back({"prepare_jsonl_invalid_utf8", raw_file_case("d.jsonl", "{\"text\": \"caf\xc3\x28\"}\n", prepare("d.jsonl")),
               {"d.jsonl:1"}, kNoPrepared});
  v.push_back({"prepare_archive_garbage",
               raw_file_case("owt.tar.xz", std::string("\xfd" "7zXZ\0\0garbage that is not xz at all", 36), prepare("owt.tar.xz")),
               {"owt.tar.xz"}, kNoPrepared});
  v.push_back({"prepare_archive_truncated",
               [](const std::string& d) {
                 std::string b = slurp(source_dir() + "/fuzz/corpus/archive/owt_nested.tar.xz");
                 spit(d + "/owt.tar.xz", b.substr(0, b.size() / 2));
                 return prepare("owt.tar.xz");
               },
               {"owt.tar.xz"}, kNoPrepared});
  v.push_back({"prepare_missing_source", [](const std::string&) { return prepare("nowhere.txt"); }, {"nowhere.txt"},
               kNoPrepared});
  v.push_back({"prepare_unknown_extension", raw_file_case("paper.pdf", "%PDF-1.4", prepare("paper.pdf")), {"paper.pdf"},
               kNoPrepared});
  v.push_back({"prepare_out_dir_unwritable",
               [](const std::string& d) {
                 spit(d + "/blocker", "x");
                 return Args{"prepare", "--quiet", "--out", "blocker/out", "text"};
               },
               {"blocker/out"}, {"blocker/out"}});
  // --- shards (corpus-stats reads train.bin / val.bin of a prepared dir) ---------------------------
  v.push_back({"shard_odd_size", prepared_case("prepared/train.bin", "\x01\x02\x03", {"corpus-stats", "prepared"}),
               {"train.bin"}});
  v.push_back({"shard_llmc_count_lies",
               prepared_case("prepared/train.bin", llmc_shard(20240520, 1, 1000, 10), {"corpus-stats", "prepared"}),
               {"train.bin", "1000"}});
  v.push_back({"shard_llmc_bad_version",
               prepared_case("prepared/train.bin", llmc_shard(20240520, 7, 10, 10), {"corpus-stats", "prepared"}),
               {"train.bin", "version"}});
  v.push_back({"shard_llmc_llama3_magic",
               prepared_case("prepared/train.bin", llmc_shard(20240801, 1, 10, 10), {"corpus-stats", "prepared"}),
               {"train.bin", "20240801"}});
  v.push_back({"shard_missing",
               [](const std::string& d) {
                 Args a = prepared_case("", "", {"corpus-stats", "prepared"})(d);
                 fs::remove(d + "/prepared/val.bin");
                 return a;
               },
               {"val.bin"}});
  v.push_back({"corpus_meta_json_corrupt", prepared_case("prepared/meta.json", "{\"tokens\": [", {"corpus-stats", "prepared"}),
               {"meta.json"}});
  // meta.json is read strictly: a mistyped field names the file and the field.
  auto meta_edit = [](std::function<void(json&)> edit) {
    return [edit](const std::string& d) {
      Args a = prepared_case("", "", {"corpus-stats", "prepared"})(d);
      json m = json::parse(slurp(d + "/prepared/meta.json"));
      edit(m);
      spit(d + "/prepared/meta.json", m.dump(2));
      return a;
    };
  };
  v.push_back({"corpus_meta_sources_are_strings", meta_edit([](json& m) { m["sources"] = {"a.txt", "b.txt"}; }),
               {"meta.json", "sources[0]", "expected a JSON object"}});
  v.push_back({"corpus_meta_token_count_is_text", meta_edit([](json& m) { m["tokens"]["train"] = "many"; }),
               {"meta.json", "'train'", "wrong type"}});
  v.push_back({"corpus_meta_split_seed_negative", meta_edit([](json& m) { m["split"]["seed"] = -3; }),
               {"meta.json", "'seed'"}});
  // --- report inputs (analysis.json, metrics.jsonl, phase_change.json) are read strictly --------
  // A run dir whose analysis.json passes except for `edit`; the report must fail before writing.
  auto run_case = [](std::function<void(json& analysis, std::string& metrics, json& phase)> edit) {
    return [edit](const std::string& d) {
      json a = {{"format", "circuitlab-analysis-v1"},
                {"config", {{"n_layers", 1}, {"d_model", 8}, {"n_heads", 2}, {"d_head", 4}, {"n_ctx", 8},
                            {"d_vocab", 1000}, {"attn_only", true}, {"family", "toy"}}},
                {"heads", json::array({{{"layer", 0}, {"head", 0}, {"labels", json::array()}},
                                       {{"layer", 0}, {"head", 1}, {"labels", json::array()}}})}};
      std::string metrics = "{\"step\": 10, \"tokens\": 1000, \"train_loss\": 5.0}\n";
      json phase;
      edit(a, metrics, phase);
      spit(d + "/run/analysis.json", a.dump(2));
      spit(d + "/run/metrics.jsonl", metrics);
      if (!phase.is_null()) spit(d + "/run/phase_change.json", phase.dump(2));
      return Args{"report", "--runs", "run", "--out", "report", "--no-svg"};
    };
  };
  v.push_back({"report_analysis_heads_not_an_array", run_case([](json& a, std::string&, json&) { a["heads"] = "oops"; }),
               {"analysis.json", "'heads'", "expected an array"}, {"report"}});
  v.push_back({"report_analysis_head_layer_is_text",
               run_case([](json& a, std::string&, json&) { a["heads"][1]["layer"] = "zero"; }),
               {"analysis.json", "'heads[1].layer'"}, {"report"}});
  v.push_back({"report_analysis_icl_score_is_text",
               run_case([](json& a, std::string&, json&) { a["icl"] = {{"icl_score", "low"}}; }),
               {"analysis.json", "'icl.icl_score'"}, {"report"}});
  v.push_back({"report_analysis_wrong_format",
               run_case([](json& a, std::string&, json&) { a["format"] = "circuitlab-phase-change-v1"; }),
               {"analysis.json", "'format'"}, {"report"}});
  v.push_back({"report_metrics_step_is_text",
               run_case([](json&, std::string& m, json&) { m = "{\"step\": \"ten\", \"tokens\": 1000}\n"; }),
               {"metrics.jsonl:1", "'step'"}, {"report"}});
  v.push_back({"report_phase_snapshots_not_objects",
               run_case([](json&, std::string&, json& p) { p = {{"snapshots", {1, 2}}}; }),
               {"phase_change.json", "'snapshots[0]'"}, {"report"}});
  // --- the lab server refuses a bad model dir before it binds a port ----------------------------
  v.push_back({"serve_model_dir_bad_config",
               raw_file_case("model/config.json", "{", {"serve", "--model", "model", "--port", "0", "--port-file", "port"}),
               {"config.json", "JSON"}, {"port"}});
  // --- the CLI itself -----------------------------------------------------------------------------
  Case opt{"cli_misspelt_option", [](const std::string&) { return Args{"inspect", "--modle", "model"}; }, {"model"}};
  v.push_back(opt);
  Case num{"cli_bad_number",
           [](const std::string&) { return Args{"prepare", "--val-fraction", "half", "--out", "out", "text"}; },
           {"val-fraction"}, kNoPrepared};
  v.push_back(num);
  return v;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(BadInputs, Catalogue, ::testing::ValuesIn(catalogue()), case_name);

TEST(CatalogueSize, AtLeastTwentyCases) { EXPECT_GE(catalogue().size(), 20u); }

}  // namespace
