// One SAE training step (train/sae_step.h: the one dense encoder GEMM, sparse decode and sparse
// gradients, Adam, unit-norm decoder) on random activations, for bench/sae_side_by_side.sh.
// Args: d_in, d_sae, k, tokens. Shapes: GPT-2-small resid (768, 24576, 32, 4096) and a toy.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>

#include "models/sae.h"
#include "train/sae_step.h"

namespace {

void BM_SaeStep(benchmark::State& state) {
  using namespace circuitlab;
  models::SaeConfig c;
  c.architecture = models::SaeArchitecture::TopK;
  c.d_in = state.range(0);
  c.d_sae = state.range(1);
  c.k = state.range(2);
  const int64_t n = state.range(3);
  // OpenMP defaults to one thread here: take the count the side-by-side script asks for.
  if (const char* t = std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::max(1, std::atoi(t)));
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({n, c.d_in}) * 3;
  train::SaeTrainingState st(c, {});
  st.init(x, 0);
  st.step(x);  // warm-up (first-touch of the Adam moments and gradients)
  for (auto _ : state) {
    auto s = st.step(x);
    benchmark::DoNotOptimize(s.loss);
  }
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_SaeStep)->Args({768, 24576, 32, 4096})->Args({64, 1024, 4, 4096})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_MAIN();
