// End-to-end tests of the data subcommands through the `circuitlab` binary: the default
// corpus (about 3.3 M tokens), an OpenWebText-layout archive made with tar + xz, and the bad
// input list of issue 2 (one-line error naming the file, exit code != 0, no partial output).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/shards.h"
#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

using namespace circuitlab;
using namespace circuitlab::testing;

namespace {

RunResult cl(std::vector<std::string> args, const std::string& stdin_file = "") {
  args.insert(args.begin(), circuitlab_bin());
  return run_program(args, {stdin_file});
}

// A user-facing failure: exit code 1, exactly one line on stderr, naming `needle`.
void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << "stderr must be one line:\n" << r.err;
  EXPECT_NE(r.err.find("circuitlab: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr should name " << needle << ":\n" << r.err;
}

void sh(const std::string& cmd) {
  RunResult r = run_shell(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
}

}  // namespace

TEST(DataCli, EverySubcommandHasHelp) {
  for (const char* sub : {"encode", "decode", "prepare", "corpus-stats"}) {
    RunResult r = cl({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("--threads"), std::string::npos) << sub << " --help must list --threads";
  }
}

TEST(DataCli, DefaultCorpusPreparesToAbout3Point3MTokens) {
  TempDir d;
  RunResult r = cl({"prepare", "--default", "--out", d / "default", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto meta = nlohmann::json::parse(slurp(d / "default/meta.json"));
  uint64_t total = meta["tokens"]["total"];
  EXPECT_GT(total, 3'000'000u);
  EXPECT_LT(total, 3'700'000u);
  EXPECT_EQ(meta["documents"]["total"], 600u);  // 500 Brown files + 100 nlp-corpus files
  EXPECT_GT(meta["documents"]["val"].get<uint64_t>(), 10u);
  data::TokenShard train(d / "default/train.bin"), val(d / "default/val.bin");
  EXPECT_EQ(train.size() + val.size(), total);
  EXPECT_EQ(train[train.size() - 1], data::kEndOfText);
  RunResult st = cl({"corpus-stats", d / "default", "--top", "5"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("tokens:"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\" the\""), std::string::npos) << st.out;  // " the" is among the top 5
  // The split and the tokens are deterministic.
  RunResult again = cl({"prepare", "--default", "--out", d / "again", "--threads", "1", "--quiet"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(slurp(d / "again/train.bin"), slurp(d / "default/train.bin"));
  EXPECT_EQ(slurp(d / "again/val.bin"), slurp(d / "default/val.bin"));
}

TEST(DataCli, OpenWebTextArchiveMadeWithTarAndXz) {
  TempDir d;
  sh("mkdir -p " + d / "s1" + " " + d / "s2" + " " + d / "owt/openwebtext");
  spit(d / "s1/0-a.txt", "One document about attention heads.\n");
  spit(d / "s1/1-b.txt", "Двa документа — two documents.\n");
  spit(d / "s2/2-c.txt", "Third\n\n\n\nwith blank lines and\ttabs.");
  sh("cd " + d / "s1" + " && tar -cJf " + d / "owt/openwebtext/urlsf_subset00-1_data.xz" + " 0-a.txt 1-b.txt");
  sh("cd " + d / "s2" + " && tar -cJf " + d / "owt/openwebtext/urlsf_subset00-2_data.xz" + " 2-c.txt");
  sh("cd " + d / "owt" + " && tar -cJf " + d / "openwebtext.tar.xz" +
     " openwebtext/urlsf_subset00-1_data.xz openwebtext/urlsf_subset00-2_data.xz");
  RunResult r = cl({"prepare", d / "openwebtext.tar.xz", "--out", d / "out", "--val-fraction", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  data::Tokenizer tok = data::Tokenizer::load_default();
  std::vector<int32_t> want;
  for (const char* f : {"s1/0-a.txt", "s1/1-b.txt", "s2/2-c.txt"}) {
    auto ids = tok.encode(slurp(d / f));
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(data::kEndOfText);
  }
  data::TokenShard train(d / "out/train.bin");
  EXPECT_EQ(std::vector<int32_t>(train.tokens(), train.tokens() + train.size()), want);
}

TEST(DataCli, BadTokenizerFiles) {
  TempDir d;
  spit(d / "in.txt", "hello");
  expect_one_line_error(cl({"encode", "--tokenizer", d / "nowhere"}, d / "in.txt"), d / "nowhere");
  sh("mkdir -p " + d / "tok");
  spit(d / "tok/encoder.json", "[1, 2");
  spit(d / "tok/vocab.bpe", "#version: 0.2\n");
  expect_one_line_error(cl({"encode", "--tokenizer", d / "tok"}, d / "in.txt"), d / "tok/encoder.json");
  spit(d / "tok/encoder.json", slurp(data::assets_dir() + "/tokenizer/encoder.json"));
  spit(d / "tok/vocab.bpe", "#version: 0.2\nonly-one-symbol\n");
  expect_one_line_error(cl({"encode", "--tokenizer", d / "tok"}, d / "in.txt"), d / "tok/vocab.bpe");
}

TEST(DataCli, DecodeRejectsIdsOutsideTheVocabulary) {
  TempDir d;
  spit(d / "ids.txt", "15496 50257\n");
  expect_one_line_error(cl({"decode"}, d / "ids.txt"), "50257");
  spit(d / "ids.txt", "15496 -3");
  expect_one_line_error(cl({"decode"}, d / "ids.txt"), "-3");
  spit(d / "ids.txt", "15496 hello");
  expect_one_line_error(cl({"decode"}, d / "ids.txt"), "hello");
  spit(d / "ids.txt", "15496 995\n");
  RunResult ok = cl({"decode"}, d / "ids.txt");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.out, "Hello world");
}

TEST(DataCli, PrepareBadInputLeavesNoOutput) {
  TempDir d;
  // Empty corpus.
  sh("mkdir -p " + d / "emptydir");
  spit(d / "emptydir/a.txt", "");
  expect_one_line_error(cl({"prepare", d / "emptydir", "--out", d / "out1"}), d / "emptydir");
  EXPECT_FALSE(circuitlab::testing::list_dir(d.path()) != std::vector<std::string>{"emptydir"});
  // Unreadable paths.
  expect_one_line_error(cl({"prepare", d / "missing.txt", "--out", d / "out2"}), d / "missing.txt");
  spit(d / "weird.xyz", "text");
  expect_one_line_error(cl({"prepare", d / "weird.xyz", "--out", d / "out3"}), d / "weird.xyz");
  // An archive whose member is corrupt: the error names the member; the existing output
  // directory keeps only what it had.
  sh("mkdir -p " + d / "s " + d / "o/openwebtext " + d / "keep");
  sh("head -c 300000 /dev/urandom | base64 > " + d / "s/a.txt");  // incompressible: truncation bites
  sh("cd " + d / "s" + " && tar -cJf " + d / "inner.xz" + " a.txt && head -c 2000 " + d / "inner.xz" + " > " +
     d / "o/openwebtext/urlsf_subset00-9_data.xz");
  sh("cd " + d / "o" + " && tar -cJf " + d / "bad.tar.xz" + " openwebtext");
  spit(d / "keep/old.txt", "previous contents");
  expect_one_line_error(cl({"prepare", d / "bad.tar.xz", "--out", d / "keep"}), "urlsf_subset00-9_data.xz");
  EXPECT_EQ(list_dir(d / "keep"), std::vector<std::string>{"old.txt"});
  // A bad JSONL line.
  spit(d / "c.jsonl", "{\"text\": \"fine\"}\n{\"txt\": \"no\"}\n");
  expect_one_line_error(cl({"prepare", d / "c.jsonl", "--out", d / "out4"}), d / "c.jsonl:2");
  EXPECT_FALSE(circuitlab::is_directory(d / "out4"));
}

TEST(DataCli, CorpusStatsRejectsCorruptShards) {
  TempDir d;
  spit(d / "c.txt", "A small corpus with a few words in it.");
  ASSERT_EQ(cl({"prepare", d / "c.txt", "--out", d / "p", "--val-fraction", "0", "--quiet"}).exit_code, 0);
  expect_one_line_error(cl({"corpus-stats", d / "nothing"}), d / "nothing");
  std::string train = slurp(d / "p/train.bin");
  spit(d / "p/train.bin", train + "x");
  expect_one_line_error(cl({"corpus-stats", d / "p"}), d / "p/train.bin");
  spit(d / "p/train.bin", train + "xy");
  expect_one_line_error(cl({"corpus-stats", d / "p"}), "meta.json says");
}
