// Forward-pass latency of HookedTransformer (Google Benchmark): GPT-2-small shape (12 layers,
// D 768, 12 heads, V 50257) over 64 tokens, with the full activation cache (every hook point,
// per-head hook_result included) and with no hooks (the trainer's path), plus a 2-layer
// attention-only toy. Not a correctness test (tests/models). Environment:
//   CIRCUITLAB_BENCH_MODEL=DIR  use this model dir (else random GPT-2-small-shaped weights)
//   CIRCUITLAB_THREADS=N        intra-op threads (default 1)
// Side by side with PyTorch eager: bench/forward_vs_torch.py.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>

#include "models/model_dir.h"

namespace {

using circuitlab::models::HookedTransformer;
using circuitlab::models::ModelConfig;

int threads() {
  const char* t = std::getenv("CIRCUITLAB_THREADS");
  return t ? std::atoi(t) : 1;
}

HookedTransformer& gpt2_small() {
  static HookedTransformer m = [] {
    at::set_num_threads(threads());
    if (const char* dir = std::getenv("CIRCUITLAB_BENCH_MODEL")) return circuitlab::models::load_model_dir(dir).model;
    ModelConfig c;
    c.family = circuitlab::models::ModelFamily::Gpt2;
    c.n_layers = 12;
    c.d_model = 768;
    c.n_heads = 12;
    c.d_head = 64;
    c.n_ctx = 1024;
    c.d_vocab = 50257;
    c.attn_only = false;
    c.d_mlp = 3072;
    c.tied_unembed = true;
    c.initializer_range = 0.02;
    return HookedTransformer(c);
  }();
  return m;
}

torch::Tensor tokens(int64_t T, int64_t V) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  return torch::randint(V, {1, T}, gen, torch::kLong);
}

void BM_Gpt2SmallForwardFullCache(benchmark::State& state) {
  auto& m = gpt2_small();
  torch::NoGradGuard ng;
  torch::Tensor tok = tokens(state.range(0), m->cfg().d_vocab);
  size_t n_cached = 0;
  for (auto _ : state) {
    auto [logits, cache] = circuitlab::models::run_with_cache(m, tok);
    n_cached = cache.size();
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["cached"] = static_cast<double>(n_cached);
  state.counters["threads"] = at::get_num_threads();
}
BENCHMARK(BM_Gpt2SmallForwardFullCache)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Gpt2SmallForwardNoHooks(benchmark::State& state) {
  auto& m = gpt2_small();
  torch::NoGradGuard ng;
  torch::Tensor tok = tokens(state.range(0), m->cfg().d_vocab);
  for (auto _ : state) benchmark::DoNotOptimize(m->forward(tok).data_ptr());
  state.counters["threads"] = at::get_num_threads();
}
BENCHMARK(BM_Gpt2SmallForwardNoHooks)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// The trainer's shape: 2-layer attention-only toy, batch 8 x 128 tokens, forward + backward.
void BM_Attn2LTrainStepFwdBwd(benchmark::State& state) {
  at::set_num_threads(threads());
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 256;
  c.n_heads = 8;
  c.d_head = 32;
  c.n_ctx = 256;
  c.d_vocab = 8192;
  static HookedTransformer m(c);
  torch::Tensor tok = torch::randint(c.d_vocab, {8, 128}, torch::kLong);
  for (auto _ : state) {
    m->zero_grad();
    torch::Tensor logits = m->forward(tok);
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits.view({-1, c.d_vocab}), tok.view({-1}));
    loss.backward();
    benchmark::DoNotOptimize(loss.item<float>());
  }
}
BENCHMARK(BM_Attn2LTrainStepFwdBwd)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
