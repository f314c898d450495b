// BM_SaeStep: one SAE training step (train/sae_step.h: the one dense encoder GEMM, sparse decode
// and sparse gradients, Adam, unit-norm decoder) on random activations, for
// bench/sae_side_by_side.sh. Args: d_in, d_sae, k, tokens. Shapes: GPT-2-small resid
// (768, 24576, 32, 4096) and a toy.
// BM_SaeFeatures: the whole `sae features` pass (analysis/sae_features.h: model forward to the
// hook, encode, per-latent statistics and selections, logit effects, neighbours) on random
// weights and tokens. Args: model (0: the demo's lab preset shape, 2 layers d_model 128 on
// 10240 ids, its SAE 2048 latents k 32 on blocks.1.hook_resid_mid; 1: GPT-2 small, 12 layers
// d_model 768 on 50257 ids, an SAE of 24576 latents k 32 on blocks.6.hook_resid_pre), tokens.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "analysis/sae_features.h"
#include "core/file_io.h"
#include "models/hooked_transformer.h"
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

void BM_SaeFeatures(benchmark::State& state) {
  using namespace circuitlab;
  const bool gpt2 = state.range(0) == 1;
  const int64_t tokens = state.range(1);
  if (const char* t = std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::max(1, std::atoi(t)));
  models::ModelConfig mc;
  mc.n_layers = gpt2 ? 12 : 2;
  mc.d_model = gpt2 ? 768 : 128;
  mc.n_heads = gpt2 ? 12 : 4;
  mc.d_head = gpt2 ? 64 : 32;
  mc.n_ctx = gpt2 ? 1024 : 128;
  mc.d_vocab = gpt2 ? 50257 : 10240;
  mc.attn_only = false;
  mc.normalization_type = gpt2 ? models::Normalization::LN : models::Normalization::None;
  mc.positional_embedding_type = gpt2 ? "standard" : "shortformer";
  torch::manual_seed(0);
  models::HookedTransformer model(mc);
  models::SaeConfig c;
  c.architecture = models::SaeArchitecture::TopK;
  c.d_in = mc.d_model;
  c.d_sae = gpt2 ? 24576 : 2048;
  c.k = 32;
  c.hook_name = gpt2 ? "blocks.6.hook_resid_pre" : "blocks.1.hook_resid_mid";
  c.context_size = 128;
  models::SparseAutoencoder sae(c);
  sae.W_enc = torch::randn({c.d_in, c.d_sae}) / std::sqrt(static_cast<double>(c.d_in));
  sae.W_dec = sae.W_enc.t().contiguous();
  sae.b_enc = torch::zeros({c.d_sae});
  sae.b_dec = torch::zeros({c.d_in});
  // A shard of random ids below the model's vocabulary (its ids are GPT-2 ids here).
  const std::string path = "/tmp/circuitlab_bench_sae_features_" + std::to_string(state.range(0)) + ".bin";
  {
    const torch::Tensor ids = torch::randint(0, mc.d_vocab, {tokens + 1}, torch::kLong).to(torch::kInt);
    std::string bytes(static_cast<size_t>(tokens + 1) * 2, '\0');
    for (int64_t i = 0; i <= tokens; ++i) {
      const auto v = static_cast<uint16_t>(ids[i].item<int>());
      bytes[static_cast<size_t>(2 * i)] = static_cast<char>(v & 0xff);
      bytes[static_cast<size_t>(2 * i + 1)] = static_cast<char>(v >> 8);
    }
    write_file_atomic(path, bytes);
  }
  const data::TokenShard shard(path);
  analysis::SaeFeatureOptions o;
  o.tokens = tokens;
  for (auto _ : state) {
    auto f = analysis::compute_sae_features(model, sae, shard, std::nullopt, o);
    benchmark::DoNotOptimize(f.latents.data());
  }
  state.counters["latents"] = static_cast<double>(c.d_sae);
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["latent_tokens_per_s"] =
      benchmark::Counter(static_cast<double>(c.d_sae) * static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_SaeFeatures)->Args({0, 65536})->Args({1, 8192})->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1)->Repetitions(3);
BENCHMARK(BM_SaeStep)->Args({768, 24576, 32, 4096})->Args({64, 1024, 4, 4096})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_MAIN();
