// Training throughput of the attn2l and lab presets in C++ (the step the trainer runs: the
// hand-written forward + backward of train/fast_transformer.h when the model qualifies, else
// autograd; clip_grad_norm_ + AdamW; random tokens, same batch and context), the autograd step
// for comparison, and the machine's sgemm FLOP/s for the achieved-vs-peak ratio. bench/bench_train.sh runs this beside bench/bench_train_pytorch.py
// (the same model in PyTorch eager) and prints medians and ratios. Not a test.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include <torch/torch.h>
#if __has_include(<dnnl.h>)
#include <dnnl.h>
#endif

#include "models/hooked_transformer.h"
#include "train/fast_transformer.h"
#include "train/optimizer.h"
#include "train/train_config.h"

namespace {

using namespace circuitlab;

int threads() {
  const char* t = std::getenv("BENCH_THREADS");
  return t ? std::atoi(t) : 1;
}

// Model FLOPs per trained token (forward matmuls x 3 for forward + backward), causal
// attention counted in full as nanoGPT/PaLM MFU accounting does.
double train_flops_per_token(const models::ModelConfig& c) {
  const double D = c.d_model, HD = static_cast<double>(c.n_heads) * c.d_head, T = c.n_ctx, V = c.vocab_out();
  double per_layer = 2 * D * 3 * HD + 2 * HD * D + 2 * 2 * T * HD;  // QKV, O, QK^T and AV
  if (!c.attn_only) per_layer += 2 * 2 * D * c.mlp_dim();
  return 3 * (c.n_layers * per_layer + 2 * D * V);
}

// One training step's setup for a preset: its model (seed 0), trainable parameters, AdamW as the
// trainer builds it, and a random batch x -> y ([B, T] each).
struct PresetStep {
  train::TrainConfig cfg;
  models::HookedTransformer model{nullptr};
  std::vector<torch::Tensor> pt;
  std::unique_ptr<torch::optim::AdamW> opt;
  torch::Tensor x, y;
  explicit PresetStep(const std::string& preset) {
    at::set_num_threads(threads());
    cfg = train::train_config_from_json(train::load_preset_json(preset), preset);
    torch::manual_seed(0);
    model = models::HookedTransformer(cfg.model);
    auto params = train::named_trainable_params(model, false);
    for (auto& p : params) pt.push_back(p.param);
    opt = train::make_adamw(params, {cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.adam_eps, false});
    const int64_t B = cfg.batch_size, T = cfg.model.n_ctx;
    auto tokens = torch::randint(cfg.model.d_vocab, {B, T + 1}, torch::kInt64);  // [B, T+1]
    x = tokens.slice(1, 0, T);
    y = tokens.slice(1, 1, T + 1);
  }
};

// fast: what train/trainer.cpp does (FastTransformer when supported); !fast: LibTorch autograd.
void train_step_bench(benchmark::State& state, const std::string& preset, bool fast_path) {
  PresetStep st(preset);
  auto& [cfg, model, pt, opt, x, y] = st;
  model->train();
  const int64_t B = cfg.batch_size, T = cfg.model.n_ctx, V = cfg.model.d_vocab;
  std::unique_ptr<train::FastTransformer> fast;
  if (fast_path && train::FastTransformer::supports(model)) fast = std::make_unique<train::FastTransformer>(model);
  if (fast_path && !fast) state.SkipWithError("the preset's model is not covered by the fast path");
  for (auto _ : state) {
    opt->zero_grad();
    double loss_v;
    if (fast) {
      loss_v = fast->forward_backward(x, y, 1.0);
    } else {
      auto logits = model->forward(x);  // [B, T, V]
      auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, V}), y.reshape({-1}));
      loss.backward();
      loss_v = loss.item<double>();
    }
    torch::nn::utils::clip_grad_norm_(pt, cfg.grad_clip);
    opt->step();
    benchmark::DoNotOptimize(loss_v);
  }
  const double toks = static_cast<double>(state.iterations()) * B * T;
  state.counters["tokens_per_s"] = benchmark::Counter(toks, benchmark::Counter::kIsRate);
  state.counters["flops"] = benchmark::Counter(toks * train_flops_per_token(cfg.model), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads();
}
void BM_TrainStep(benchmark::State& state, const std::string& preset) { train_step_bench(state, preset, true); }
void BM_TrainStepAutograd(benchmark::State& state, const std::string& preset) { train_step_bench(state, preset, false); }
BENCHMARK_CAPTURE(BM_TrainStep, attn2l, std::string("attn2l"))->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStepAutograd, attn2l, std::string("attn2l"))->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, lab, std::string("lab"))->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStepAutograd, lab, std::string("lab"))->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

// Where the trainer's step goes: range(0) 0 = FastTransformer forward + backward only,
// 1 = clip_grad_norm_ + AdamW step only (on the gradients of one real step).
void BM_TrainStepPiece(benchmark::State& state) {
  PresetStep st("attn2l");
  auto& [cfg, model, pt, opt, x, y] = st;
  train::FastTransformer fast(model);
  fast.forward_backward(x, y, 1.0);
  for (auto _ : state) {
    if (state.range(0) == 0) {
      benchmark::DoNotOptimize(fast.forward_backward(x, y, 1e-9));
    } else {
      torch::nn::utils::clip_grad_norm_(pt, cfg.grad_clip);
      opt->step();
    }
  }
}
BENCHMARK(BM_TrainStepPiece)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

// Square sgemm through LibTorch (the BLAS the training matmuls use).
void BM_Sgemm(benchmark::State& state) {
  at::set_num_threads(threads());
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr<float>());
  }
  state.counters["flops"] = benchmark::Counter(2.0 * n * n * n * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads();
}
BENCHMARK(BM_Sgemm)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

#if __has_include(<dnnl.h>)
// Square sgemm through oneDNN (the library the fast training path's GEMMs use).
void BM_SgemmDnnl(benchmark::State& state) {
  at::set_num_threads(threads());
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  for (auto _ : state) {
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data_ptr<float>(), n, b.data_ptr<float>(), n, 0.0f, c.data_ptr<float>(), n);
    benchmark::DoNotOptimize(c.data_ptr<float>());
  }
  state.counters["flops"] = benchmark::Counter(2.0 * n * n * n * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads();
}
BENCHMARK(BM_SgemmDnnl)->Arg(1024)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
#endif

}  // namespace

BENCHMARK_MAIN();
