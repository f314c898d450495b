// Golden test of the GPT-2 tokenizer: `circuitlab encode` (and the library) must match an
// independent GPT-2 encoder running under Node (npm js-tiktoken, "gpt2" ranks) id for id, on
// the varied text set tests/data/tokenizer_cases.json plus samples of the default corpus.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

using namespace circuitlab;
using namespace circuitlab::testing;

namespace {

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\n') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\n') ++j;
    ids.push_back(std::stoi(line.substr(i, j - i)));
    i = j;
  }
  return ids;
}

std::string first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b,
                             const data::Tokenizer& tok) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  auto show = [&](const std::vector<int32_t>& v) {
    std::string s;
    for (size_t k = i; k < v.size() && k < i + 5; ++k)
      s += std::to_string(v[k]) + nlohmann::json(tok.token_str(v[k])).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + " ";
    return s;
  };
  return "first difference at index " + std::to_string(i) + " of " + std::to_string(a.size()) + " vs " +
         std::to_string(b.size()) + ": circuitlab " + show(a) + "| reference " + show(b);
}

}  // namespace

TEST(TokenizerGolden, EncodeMatchesJsTiktokenIdForId) {
  TempDir d;
  const std::string src = source_dir();
  auto cases = nlohmann::json::parse(slurp(src + "/tests/data/tokenizer_cases.json"));
  ASSERT_GE(cases.size(), 40u);
  std::vector<std::string> files, labels;
  for (size_t i = 0; i < cases.size(); ++i) {
    files.push_back(d / ("case_" + std::to_string(i) + ".txt"));
    spit(files.back(), cases[i].get<std::string>());
    labels.push_back("case " + std::to_string(i) + " " + nlohmann::json(cases[i].get<std::string>().substr(0, 40)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  // Samples of the default corpus as documents the way prepare reads them.
  int n_corpus = 0;
  for (const auto& s : data::default_corpus_sources()) {
    int taken = 0;
    data::read_documents(s, [&](data::Document&& doc) {
      if (taken++ >= 3) return;
      files.push_back(d / ("corpus_" + std::to_string(n_corpus++) + ".txt"));
      spit(files.back(), doc.text);
      labels.push_back(doc.name);
    });
  }
  ASSERT_EQ(n_corpus, 6);

  std::vector<std::string> argv = {"node", src + "/tests/data/gpt2_reference.mjs", d / "ref.json"};
  argv.insert(argv.end(), files.begin(), files.end());
  RunResult ref = run_program(argv);
  ASSERT_EQ(ref.exit_code, 0) << "the Node reference encoder failed (needs node + npm packages from ./run setup): "
                              << ref.err;
  auto refj = nlohmann::json::parse(slurp(d / "ref.json"));
  const auto& want_all = refj["js_tiktoken"];
  ASSERT_EQ(want_all.size(), files.size());

  data::Tokenizer tok = data::Tokenizer::load_default();
  size_t total_ids = 0, gpt3_agree = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    std::vector<int32_t> want = want_all[i].get<std::vector<int32_t>>();
    RunResult r = run_program({circuitlab_bin(), "encode"}, {files[i]});
    ASSERT_EQ(r.exit_code, 0) << labels[i] << ": " << r.err;
    EXPECT_EQ(count_lines(r.out), 1) << labels[i] << ": ids must be on one line";
    EXPECT_EQ(r.out.find("  "), std::string::npos) << labels[i] << ": single spaces";
    std::vector<int32_t> got = parse_ids(r.out);
    EXPECT_EQ(got, want) << labels[i] << ": " << first_difference(got, want, tok);
    EXPECT_EQ(tok.encode(slurp(files[i])), want) << labels[i] << " (library)";
    // Round trip: decode(encode(text)) == text for valid UTF-8 text (the CLI's decode is
    // exercised in data_e2e_test.cpp).
    EXPECT_EQ(tok.decode(want), slurp(files[i])) << labels[i] << ": decode round trip";
    total_ids += want.size();
    if (!refj["gpt_3_encoder"][i].is_null() && refj["gpt_3_encoder"][i].get<std::vector<int32_t>>() == want)
      ++gpt3_agree;
  }
  EXPECT_GT(total_ids, 20000u);
  std::printf("[ info ] %zu texts, %zu ids matched js-tiktoken; gpt-3-encoder agreed on %zu of %zu texts\n",
              files.size(), total_ids, gpt3_agree, files.size());
}
