// Tokenizer throughput on the embedded default corpus (Brown + nlp-corpus documents as
// `prepare` reads them): MB/s of UTF-8 input, one thread and two, warm and cold word cache.
// Not a test: no assertions on time. bench/tokenizer_side_by_side.sh compares with npm
// tiktoken (wasm) and js-tiktoken on the same documents.
//   bench_tokenizer [--dump-corpus FILE.jsonl] [google-benchmark flags]
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "core/file_io.h"
#include "data/tokenizer.h"

using namespace circuitlab::data;

namespace {

const std::vector<std::string>& corpus() {
  static std::vector<std::string> docs = [] {
    std::vector<std::string> d;
    for (const auto& s : default_corpus_sources())
      read_documents(s, [&](Document&& doc) { d.push_back(std::move(doc.text)); });
    return d;
  }();
  return docs;
}

int64_t corpus_bytes() {
  int64_t n = 0;
  for (const auto& d : corpus()) n += static_cast<int64_t>(d.size());
  return n;
}

// Warm cache: the tokenizer is loaded once; the first pass fills the word cache.
void BM_EncodeWarm(benchmark::State& state) {
  static Tokenizer tok = Tokenizer::load_default();
  const int threads = static_cast<int>(state.range(0));
  tok.encode_batch(corpus(), threads);  // warm up
  size_t ids = 0;
  for (auto _ : state) {
    auto out = tok.encode_batch(corpus(), threads);
    ids = 0;
    for (auto& v : out) ids += v.size();
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
  state.counters["tokens"] = static_cast<double>(ids);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(corpus_bytes()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Cold cache: a freshly loaded tokenizer per iteration (load time excluded).
void BM_EncodeCold(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    Tokenizer tok = Tokenizer::load_default();
    state.ResumeTiming();
    auto out = tok.encode_batch(corpus(), threads);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(corpus_bytes()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Decode(benchmark::State& state) {
  static Tokenizer tok = Tokenizer::load_default();
  static std::vector<std::vector<int32_t>> ids = tok.encode_batch(corpus(), 1);
  for (auto _ : state)
    for (const auto& v : ids) benchmark::DoNotOptimize(tok.decode(v));
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
}

}  // namespace

BENCHMARK(BM_EncodeWarm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EncodeCold)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  // --dump-corpus FILE: write the benchmark's documents as JSONL {"text": ...} and exit, so
  // the Node side of bench/tokenizer_side_by_side.sh encodes exactly the same text.
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--dump-corpus") == 0) {
      std::string out;
      for (const auto& d : corpus()) out += nlohmann::json({{"text", d}}).dump() + "\n";
      circuitlab::write_file_atomic(argv[i + 1], out);
      std::printf("%zu documents, %lld bytes -> %s\n", corpus().size(), static_cast<long long>(corpus_bytes()), argv[i + 1]);
      return 0;
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
