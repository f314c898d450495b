// Weight-based analyses on a GPT-2-small-shaped random checkpoint (12 layers × 12 heads,
// d_model 768, d_head 64, vocab 50257, LN, tied unembedding): LN folding + embedding Grams,
// full-vocabulary OV and QK eigenvalue positivity of all 144 heads, and all Q/K/V composition
// scores, each iteration from the in-memory state dict (fold + Grams + positivity +
// composition; the file load is timed separately in the stderr breakdown). Writes the checkpoint (safetensors, TL names) and the computed numbers to
// $CIRCUITLAB_BENCH_DIR (default /tmp/circuitlab_bench_analysis) so bench/analysis_tl_style.py
// can compute the same numbers the TransformerLens way and compare (bench/analysis_side_by_side.sh).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "analysis/circuit_weights.h"
#include "analysis/composition.h"
#include "analysis/eigen_positivity.h"
#include "core/file_io.h"
#include "models/safetensors.h"

using namespace circuitlab;
using namespace circuitlab::analysis;

namespace {

double secs(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds of the whole process (all threads, user + system): the machine is shared, so
// wall time alone overstates the cost when other jobs hold the cores.
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Lap {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
  double c = process_cpu_s();
  void print(const char* what) {
    const double cn = process_cpu_s();
    std::fprintf(stderr, "  %-52s wall %6.3f s   process CPU %6.3f s\n", what, secs(t), cn - c);
    t = std::chrono::steady_clock::now();
    c = cn;
  }
};

models::ModelConfig gpt2_small_shape() {
  models::ModelConfig c;
  c.n_layers = 12;
  c.n_heads = 12;
  c.d_model = 768;
  c.d_head = 64;
  c.n_ctx = 1024;
  c.d_vocab = 50257;
  c.normalization_type = models::Normalization::LN;
  c.tied_unembed = true;
  c.family = models::ModelFamily::Gpt2;
  return c;
}

std::map<std::string, torch::Tensor> random_weights(const models::ModelConfig& c) {
  torch::manual_seed(1234);
  std::map<std::string, torch::Tensor> sd;
  const int64_t D = c.d_model, H = c.n_heads, Dh = c.d_head;
  sd["embed.W_E"] = torch::randn({c.d_vocab, D}) * 0.02;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    sd[p + "ln1.w"] = 1.0 + 0.1 * torch::randn({D});
    sd[p + "ln1.b"] = 0.02 * torch::randn({D});
    for (const char* n : {"attn.W_Q", "attn.W_K", "attn.W_V"}) sd[p + n] = torch::randn({H, D, Dh}) * 0.02;
    sd[p + "attn.W_O"] = torch::randn({H, Dh, D}) * 0.02;
  }
  sd["ln_final.w"] = 1.0 + 0.1 * torch::randn({D});
  sd["ln_final.b"] = 0.02 * torch::randn({D});
  return sd;
}

struct Setup {
  models::ModelConfig cfg = gpt2_small_shape();
  std::map<std::string, torch::Tensor> sd = random_weights(cfg);
  std::string dir;
  Setup() {
    const char* d = std::getenv("CIRCUITLAB_BENCH_DIR");
    dir = d ? d : "/tmp/circuitlab_bench_analysis";
    make_dirs(dir);
    models::save_safetensors(dir + "/weights.safetensors", sd);
  }
};
Setup& setup() {
  static Setup s;
  return s;
}

struct Result {
  std::vector<HeadPositivity> pos;
  CompositionScores comp;
};

Result run_all(torch::Dtype dtype) {
  FoldOptions fo;
  fo.big_dtype = dtype;
  CircuitWeights w = fold_circuit_weights(setup().cfg, setup().sd, fo);
  EmbedGrams g = embed_grams(w);
  Result r;
  r.pos = head_positivities(w, g, {});  // OV, QK (and OV-alone) positivity, norms; no K-comp
  r.comp = composition_scores(w, dtype);
  return r;
}

void BM_AllHeadsPositivityAndComposition(benchmark::State& state) {
  const torch::Dtype dtype = state.range(0) == 32 ? torch::kFloat32 : torch::kFloat64;
  setup();
  double cpu = 0;
  for (auto _ : state) {
    const double c0 = process_cpu_s();
    Result r = run_all(dtype);
    benchmark::DoNotOptimize(r.comp.k.data());
    cpu += process_cpu_s() - c0;
  }
  state.counters["process_cpu_s"] = benchmark::Counter(cpu, benchmark::Counter::kAvgIterations);
  state.SetLabel(state.range(0) == 32 ? "float32 vocab GEMMs" : "float64 throughout");
}
BENCHMARK(BM_AllHeadsPositivityAndComposition)->Arg(32)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(5)->ReportAggregatesOnly(true);

// One pass with a timer around each piece (printed to stderr): where the time goes.
void breakdown(torch::Dtype dtype) {
  Lap lap;
  auto sd = models::load_safetensors(setup().dir + "/weights.safetensors");
  lap.print("load safetensors (not in the timed benchmark)");
  FoldOptions fo;
  fo.big_dtype = dtype;
  CircuitWeights w = fold_circuit_weights(setup().cfg, sd, fo);
  lap.print("fold LN + stack heads + Dh×Dh Grams");
  EmbedGrams g = embed_grams(w);
  lap.print("embedding Gram W_Eᵀ·W_E (V×D×D)");
  auto pos = head_positivities(w, g, {});
  lap.print("OV/QK positivity, 144 heads (cores + eigen solves)");
  CompositionScores cs = composition_scores(w, dtype);
  lap.print("Q/K/V composition, all pairs");
  std::vector<double> prev(static_cast<size_t>(w.L * w.H));
  for (size_t i = 0; i < prev.size(); ++i) prev[i] = double((i * 37) % 101) / 100.0;
  pos = head_positivities(w, g, prev);
  lap.print("(analyze: positivity incl. K-composition terms)");
}

void dump_numbers(torch::Dtype dtype, const std::string& file) {
  Result r = run_all(dtype);
  nlohmann::json j;
  nlohmann::json ov = nlohmann::json::array(), qk = nlohmann::json::array();
  for (const auto& p : r.pos) {
    ov.push_back(p.ov);
    qk.push_back(p.qk);
  }
  j["ov_positivity"] = ov;
  j["qk_positivity"] = qk;
  j["composition_q"] = r.comp.q;
  j["composition_k"] = r.comp.k;
  j["composition_v"] = r.comp.v;
  write_file_atomic(setup().dir + "/" + file, j.dump());
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  if (const char* t = std::getenv("CIRCUITLAB_THREADS")) threads = std::atoi(t);
  at::set_num_threads(threads);
  benchmark::Initialize(&argc, argv);
  for (int bits : {32, 64}) {
    std::fprintf(stderr, "breakdown, %s vocab GEMMs:\n", bits == 32 ? "float32" : "float64");
    breakdown(bits == 32 ? torch::kFloat32 : torch::kFloat64);
  }
  dump_numbers(torch::kFloat64, "cpp_numbers.json");
  dump_numbers(torch::kFloat32, "cpp_numbers_f32.json");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
