// `run` round trip of the lab over HTTP on loopback (client -> httplib -> forward pass with
// cache, attention, residual norms, logit lens -> JSON -> client): the attn2l demo model and a
// 64-token prompt (BOS included). Target: under 150 ms. Medians via --benchmark_repetitions.
// BM_FeatureRoundTrip: the Features panel's request (`/api/features/tokens`: forward to the SAE's
// hook, encode, the top latents of every token with their labels) for the demo's lab model and
// its SAE (runs/lab/model, runs/lab/sae with features.json) on a 64-token prompt; target under
// 150 ms. Skipped (with the reason) when the demo has not been run.
//   build/bench/bench_server_run [--model DIR] [--lab-model DIR --sae DIR] [--threads N] [benchmark flags]
#include <benchmark/benchmark.h>
#include <httplib.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/server_bench_common.h"
#include "server/http_server.h"
#include "server/lab.h"

using namespace circuitlab;

static std::string g_model_dir;
static std::string g_lab_model_dir = "runs/lab/model", g_sae_dir = "runs/lab/sae";
static int g_threads = 1;

static server::ServeOptions any_free_port() {
  server::ServeOptions so;
  so.port = 0;
  return so;
}

// The lab served on a free loopback port for one benchmark, and a keep-alive client of it.
struct ServedLab {
  server::HttpServer http;
  std::thread th;
  httplib::Client cli;
  explicit ServedLab(server::Lab& lab)
      : http(lab, any_free_port()), th(), cli("127.0.0.1", http.bind()) {
    th = std::thread([this] { http.listen(); });
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);
  }
  ~ServedLab() {
    http.stop();
    th.join();
  }
};

static void BM_RunRoundTrip(benchmark::State& state, bool attention) {
  at::set_num_threads(g_threads);
  server::Lab lab;
  const std::string name = lab.add_model(g_model_dir);
  ServedLab served(lab);
  httplib::Client& cli = served.cli;
  auto tok = data::Tokenizer::load_default();
  const std::string prompt = benchsrv::prompt_of_tokens(tok, 63);  // + BOS = 64 tokens
  const std::string body =
      nlohmann::json{{"model", name}, {"text", prompt}, {"attention", attention}}.dump();
  size_t bytes = 0;
  int64_t n_tokens = 0;
  for (auto _ : state) {
    auto res = cli.Post("/api/run", body, "application/json");
    if (!res || res->status != 200) {
      state.SkipWithError(res ? res->body.c_str() : "no response");
      break;
    }
    bytes = res->body.size();
    if (n_tokens == 0) n_tokens = static_cast<int64_t>(nlohmann::json::parse(res->body)["tokens"].size());
  }
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["response_kB"] = bytes / 1024.0;
}
BENCHMARK_CAPTURE(BM_RunRoundTrip, full, true)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_RunRoundTrip, no_attention, false)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

static void BM_FeatureRoundTrip(benchmark::State& state) {
  if (!std::filesystem::exists(g_sae_dir + "/cfg.json") || !std::filesystem::exists(g_lab_model_dir + "/config.json")) {
    state.SkipWithError(("no " + g_lab_model_dir + " + " + g_sae_dir + ": run ./run demo first (or pass --lab-model and --sae)").c_str());
    for (auto _ : state) {
    }
    return;
  }
  at::set_num_threads(g_threads);
  server::Lab lab;
  const std::string model = lab.add_model(g_lab_model_dir);
  const std::string sae = lab.add_sae(g_sae_dir, model);
  ServedLab served(lab);
  httplib::Client& cli = served.cli;
  auto tok = data::Tokenizer::load_default();
  const std::string body =
      nlohmann::json{{"model", model}, {"sae", sae}, {"text", benchsrv::prompt_of_tokens(tok, 63)}}.dump();
  int64_t n_tokens = 0;
  for (auto _ : state) {
    auto res = cli.Post("/api/features/tokens", body, "application/json");
    if (!res || res->status != 200) {
      state.SkipWithError(res ? res->body.c_str() : "no response");
      break;
    }
    if (n_tokens == 0) n_tokens = static_cast<int64_t>(nlohmann::json::parse(res->body)["tokens"].size());
  }
  state.counters["tokens"] = static_cast<double>(n_tokens);
}
BENCHMARK(BM_FeatureRoundTrip)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

int main(int argc, char** argv) {
  std::vector<char*> rest;
  std::string model;
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) g_threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--lab-model") && i + 1 < argc) g_lab_model_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--sae") && i + 1 < argc) g_sae_dir = argv[++i];
    else rest.push_back(argv[i]);
  }
  g_model_dir = benchsrv::model_dir_for_bench(model, "/tmp/circuitlab-bench-attn2l-standin");
  int rargc = static_cast<int>(rest.size());
  benchmark::Initialize(&rargc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
