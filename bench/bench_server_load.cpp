// Load test of the lab: starts `circuitlab serve` as its own process on a free loopback port and
// sends concurrent `run` requests from this process for a fixed time (default 60 s): varied
// prompt lengths and random head ablations. Reports requests, failures, p50/p90/p99/max latency,
// throughput, and the server's RSS before and after (/proc/<pid>/status VmRSS).
//   build/bench/bench_server_load [--model DIR] [--seconds 60] [--clients 4] [--json OUT]
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/server_bench_common.h"
#include "core/file_io.h"
#include "core/progress.h"

using namespace circuitlab;
using nlohmann::json;

static long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int main(int argc, char** argv) {
  std::string model, out_json;
  double seconds = 60;
  int clients = 4;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--clients") && i + 1 < argc) clients = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) out_json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--model DIR] [--seconds 60] [--clients 4] [--json OUT]\n", argv[0]);
      return 2;
    }
  }
  const std::string dir = benchsrv::model_dir_for_bench(model, "/tmp/circuitlab-bench-attn2l-standin");
  std::string bin = std::filesystem::canonical("/proc/self/exe").parent_path().parent_path() / "apps" / "circuitlab";
  if (const char* b = std::getenv("CIRCUITLAB_BIN"); b && *b) bin = b;
  const std::string port_file = "/tmp/circuitlab-load-" + std::to_string(getpid()) + ".port";
  std::filesystem::remove(port_file);
  pid_t pid = fork();
  if (pid == 0) {
    execl(bin.c_str(), bin.c_str(), "serve", "--model", dir.c_str(), "--port", "0", "--port-file", port_file.c_str(),
          "--threads", "1", (char*)nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::ifstream in(port_file);
    if (!(in >> port)) port = 0;
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (port == 0) {
    std::fprintf(stderr, "server did not start\n");
    kill(pid, SIGKILL);
    return 1;
  }
  auto tok = data::Tokenizer::load_default();
  httplib::Client probe("127.0.0.1", port);
  auto info = json::parse(probe.Get("/api/models")->body)["models"][0];
  const int L = info["n_layers"], H = info["n_heads"];
  const std::string name = info["name"];
  std::vector<std::string> prompts;
  for (int n : {8, 16, 32, 48, 63}) prompts.push_back(benchsrv::prompt_of_tokens(tok, n));
  probe.Post("/api/run", json{{"model", name}, {"text", prompts.back()}}.dump(), "application/json");  // warm-up
  const long rss_before = rss_kb(pid);

  std::atomic<bool> stop{false};
  std::atomic<long> failed{0};
  std::mutex mu;
  std::vector<double> lat_ms;
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      std::mt19937 rng(c);
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_read_timeout(60, 0);
      std::vector<double> mine;
      while (!stop.load()) {
        json req = {{"model", name}, {"text", prompts[rng() % prompts.size()]}};
        if (rng() % 2) req["ablate"] = {{"heads", {{int(rng() % L), int(rng() % H)}}}};
        const auto s = std::chrono::steady_clock::now();
        auto res = cli.Post("/api/run", req.dump(), "application/json");
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
        if (!res || res->status != 200) ++failed;
        else mine.push_back(ms);
      }
      std::lock_guard<std::mutex> lk(mu);
      lat_ms.insert(lat_ms.end(), mine.begin(), mine.end());
    });
  {
    ProgressBar bar("load test", seconds, "s");
    double el = 0;
    while ((el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) < seconds) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      bar.update(std::min(el, seconds), std::to_string(failed.load()) + " failed");
    }
    bar.finish(std::to_string(failed.load()) + " failed");
  }
  stop = true;
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long rss_after = rss_kb(pid);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove(port_file);

  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double p) { return lat_ms.empty() ? 0.0 : lat_ms[std::min(lat_ms.size() - 1, size_t(p * lat_ms.size()))]; };
  json r = {{"model", dir},           {"clients", clients},
            {"seconds", wall},        {"requests_ok", lat_ms.size()},
            {"requests_failed", failed.load()}, {"req_per_s", lat_ms.size() / wall},
            {"p50_ms", pct(0.50)},    {"p90_ms", pct(0.90)},
            {"p99_ms", pct(0.99)},    {"max_ms", lat_ms.empty() ? 0.0 : lat_ms.back()},
            {"server_rss_before_mb", rss_before / 1024.0}, {"server_rss_after_mb", rss_after / 1024.0}};
  std::printf("\n| clients | seconds | ok | failed | req/s | p50 ms | p90 ms | p99 ms | max ms | RSS before MB | RSS after MB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %d | %.1f | %zu | %ld | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", clients, wall, lat_ms.size(),
              failed.load(), lat_ms.size() / wall, pct(0.5), pct(0.9), pct(0.99), lat_ms.empty() ? 0.0 : lat_ms.back(),
              rss_before / 1024.0, rss_after / 1024.0);
  if (!out_json.empty()) write_file_atomic(out_json, r.dump(2) + "\n");
  return failed.load() == 0 ? 0 : 1;
}
