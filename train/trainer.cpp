// See trainer.h. One loop for every model of the toy family and for data-parallel ranks:
// draw (micro-)batches, forward, cross-entropy, backward, [all-reduce], clip, AdamW step;
// log, evaluate, snapshot and checkpoint on their schedules.
#include "train/trainer.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/batches.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "data/shards.h"
#include "models/hooked_transformer.h"
#include "models/model_dir.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/fast_attn_only.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/span_repeat.h"

namespace circuitlab::train {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// OpenBLAS keeps its own thread pool; match it to the requested count when it is loaded.
void set_blas_threads(int n) {
  using Fn = void (*)(int);
  if (auto f = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

torch::Device parse_device(const std::string& s) {
  std::optional<torch::Device> d;
  try {
    d = torch::Device(s);
  } catch (const c10::Error&) {
    fail("--device: expected cpu, cuda or cuda:N, got '" + s + "'");
  }
  if (d->is_cuda() && !torch::cuda::is_available())
    fail("--device " + s + ": no CUDA device is available to this LibTorch build (use --device cpu)");
  if (!d->is_cpu() && !d->is_cuda()) fail("--device: expected cpu, cuda or cuda:N, got '" + s + "'");
  return *d;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// Mean next-token loss over the eval windows.
double evaluate(models::HookedTransformer& model, data::EvalWindows& windows, const torch::Device& device) {
  torch::NoGradGuard ng;
  model->eval();
  windows.reset();
  double sum = 0;
  int64_t n = 0;
  torch::Tensor x, y;
  while (windows.next(x, y)) {
    auto logits = model->forward(x.to(device));  // [b, T, V]
    auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), y.to(device).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    sum += loss.item<double>();
    n += y.numel();
  }
  model->train();
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// metrics.jsonl lines with step <= keep_step (a resumed run drops what came after its checkpoint).
void truncate_metrics(const std::string& path, int64_t keep_step) {
  if (!file_exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step")) continue;  // a torn last line after a kill -9
    if (j["step"].get<int64_t>() <= keep_step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace

std::optional<data::VocabMap> run_vocab_map(const std::string& data_dir, int d_vocab) {
  if (d_vocab >= 50257) return std::nullopt;
  std::vector<uint64_t> counts;
  const std::string counts_path = data_dir + "/token_counts.json";
  if (file_exists(counts_path)) {
    counts = data::load_token_counts(counts_path);
  } else {
    counts = data::count_tokens(data::TokenShard(data_dir + "/train.bin"));
    counts.resize(50257);
  }
  return data::build_top_n_vocab(counts, d_vocab - 1);
}

RunSummary run_training(const TrainConfig& cfg, const RunOptions& opt) {
  cfg.validate("train config '" + cfg.name + "'");
  const auto t_start = Clock::now();
  const torch::Device device = parse_device(opt.device);
  if (opt.threads < 1) fail("--threads must be >= 1");
  at::set_num_threads(opt.threads);
  set_blas_threads(opt.threads);
  const bool root = opt.rank == 0;

  // --- data ---
  const std::string train_path = opt.data_dir + "/train.bin", val_path = opt.data_dir + "/val.bin";
  for (const auto& p : {train_path, val_path})
    if (!file_exists(p)) fail(p + " does not exist (run `circuitlab prepare` first, or pass --data <dir>)");
  auto train_shard = std::make_shared<const data::TokenShard>(train_path);
  auto val_shard = std::make_shared<const data::TokenShard>(val_path);
  const auto vmap = run_vocab_map(opt.data_dir, cfg.model.d_vocab);
  const int world = opt.world_size;
  if (cfg.batch_size % (static_cast<int64_t>(world) * cfg.grad_accum) != 0)
    fail("batch_size " + std::to_string(cfg.batch_size) + " must be a multiple of world size x grad_accum (" +
         std::to_string(world) + " x " + std::to_string(cfg.grad_accum) + ")");
  const int64_t micro_b = cfg.batch_size / world / cfg.grad_accum;
  const int64_t T = cfg.model.n_ctx;
  data::BatchSampler sampler(train_shard, micro_b, T, cfg.seed, vmap, opt.rank, world);
  data::EvalWindows eval_windows(val_shard, std::min<int64_t>(32, cfg.eval_windows), T, cfg.eval_windows, vmap);
  const SpanRepeat span_repeat{cfg.span_repeat_prob, cfg.span_repeat_min_len, cfg.span_repeat_adjacent,
                               cfg.seed ^ 0x5eedull};

  // --- model and optimizer ---
  std::unique_ptr<DataParallel> dp;
  if (world > 1) dp = std::make_unique<DataParallel>(opt.rank, world, opt.master);
  torch::manual_seed(cfg.seed);
  models::ModelConfig mcfg = cfg.model;
  mcfg.seed = static_cast<int>(cfg.seed);
  models::HookedTransformer model(mcfg);
  if (cfg.pos_init_std > 0) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed ^ 0x9051ull);
    torch::NoGradGuard ng;
    model->W_pos().normal_(0.0, cfg.pos_init_std, gen);
  }
  model->to(device);
  model->train();
  auto params = named_trainable_params(model, cfg.decay_embeddings);
  std::vector<torch::Tensor> param_tensors;
  for (auto& p : params) param_tensors.push_back(p.param);
  auto adamw = make_adamw(params, {cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.adam_eps, cfg.decay_embeddings});
  const LrSchedule schedule{cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.steps};
  if (dp) dp->broadcast_from_root(param_tensors);
  // Hand-written forward + backward for attention-only CPU models (autograd otherwise).
  std::unique_ptr<FastAttnOnly> fast;
  {
    const char* env = std::getenv("CIRCUITLAB_TRAIN_AUTOGRAD");
    const bool forced_autograd = env != nullptr && std::string(env) == "1";
    if (opt.fast_path && !forced_autograd && FastAttnOnly::supports(model)) fast = std::make_unique<FastAttnOnly>(model);
  }

  // --- run directory ---
  const std::string out = opt.out_dir, ckpt_root = out + "/checkpoints", snap_root = out + "/snapshots";
  const std::string metrics_path = out + "/metrics.jsonl";
  TrainerState state;
  state.sampler = sampler.state();
  bool resumed = false;
  if (opt.resume) {
    if (auto last = latest_checkpoint(ckpt_root)) {
      const std::string saved_cfg_path = out + "/train_config.json";
      if (file_exists(saved_cfg_path)) {
        auto saved = nlohmann::json::parse(read_file(saved_cfg_path), nullptr, false);
        if (saved.is_discarded() || saved.value("model", nlohmann::json()) != to_json(cfg)["model"])
          fail(saved_cfg_path + ": the run was trained with another model config; resume with the same preset "
               "and overrides, or train into a new --out");
      }
      state = load_checkpoint(*last, model, *adamw, device);
      sampler.set_state(state.sampler);
      resumed = true;
      if (root && opt.progress) std::fprintf(stderr, "resuming %s from %s\n", cfg.name.c_str(), last->c_str());
    } else if (root && opt.progress) {
      std::fprintf(stderr, "no checkpoint in %s: starting %s from step 0\n", ckpt_root.c_str(), cfg.name.c_str());
    }
  }
  if (root) {
    make_dirs(out);
    if (!resumed) {  // a fresh run replaces what an earlier run left here
      for (const auto& p : {ckpt_root, snap_root, out + "/model"}) fs::remove_all(p);
      write_file_atomic(metrics_path, "");
    } else {
      truncate_metrics(metrics_path, state.step);
    }
    write_file_atomic(out + "/train_config.json", to_json(cfg).dump(2) + "\n");
  }
  const auto snaps = snapshot_steps(cfg.steps, cfg.snapshots);
  const std::set<int64_t> snap_set(snaps.begin(), snaps.end());
  const data::VocabMap* vmap_ptr = vmap ? &*vmap : nullptr;
  auto snapshot = [&](int64_t step) {
    if (root && snap_set.count(step)) models::save_model_dir(model, snap_root + "/step_" + std::to_string(step), vmap_ptr);
  };
  if (!resumed) snapshot(0);
  if (dp) dp->barrier();

  std::ofstream metrics;
  if (root) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) fail(metrics_path + ": cannot open for appending");
  }
  const int64_t start_step = state.step, start_tokens = state.tokens;
  const int64_t tok_per_step = cfg.tokens_per_step();
  std::unique_ptr<ProgressBar> bar;
  if (root && opt.progress && start_step < cfg.steps)
    bar = std::make_unique<ProgressBar>("train " + cfg.name, static_cast<double>((cfg.steps - start_step) * tok_per_step), "tok");

  RunSummary sum;
  double loss_acc = 0, last_val = NAN, last_train = NAN, interval_compute_s = 0;
  int64_t loss_n = 0, interval_tokens = 0;
  double session_compute_s = 0;
  const double elapsed_before = state.elapsed_s;
  const auto session_start = Clock::now();
  const int64_t stop_at = opt.stop_after >= 0 ? std::min(cfg.steps, opt.stop_after) : cfg.steps;

  while (state.step < stop_at) {
    const auto t0 = Clock::now();
    const double lr = schedule.at(state.step);
    set_lr(*adamw, lr);
    adamw->zero_grad();
    double step_loss = 0;
    for (int micro = 0; micro < cfg.grad_accum; ++micro) {
      const uint64_t batch_index = sampler.state().batches_drawn;
      auto [x, y] = sampler.next();  // [b, T] each
      if (span_repeat.prob > 0) {
        auto windows = torch::cat({x, y.slice(/*dim=*/1, T - 1, T)}, /*dim=*/1);  // [b, T+1]
        span_repeat.apply(windows, (batch_index * world + opt.rank) * static_cast<uint64_t>(micro_b));
        x = windows.slice(1, 0, T);
        y = windows.slice(1, 1, T + 1);
      }
      if (fast) {
        step_loss += fast->forward_backward(x, y, 1.0 / cfg.grad_accum) / cfg.grad_accum;
        continue;
      }
      auto logits = model->forward(x.to(device));  // [b, T, V]
      auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.to(device).reshape({-1}));
      (loss / cfg.grad_accum).backward();
      step_loss += loss.item<double>() / cfg.grad_accum;
    }
    if (dp) {
      std::vector<torch::Tensor> grads;
      for (auto& p : param_tensors)
        if (p.grad().defined()) grads.push_back(p.mutable_grad());
      std::vector<double> extras{step_loss};
      dp->average(grads, extras);
      step_loss = extras[0];
    }
    double grad_norm;
    if (cfg.grad_clip > 0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(param_tensors, cfg.grad_clip);
    } else {
      double sq = 0;
      for (auto& p : param_tensors)
        if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
      grad_norm = std::sqrt(sq);
    }
    adamw->step();
    state.step += 1;
    state.tokens += tok_per_step;
    const double dt = seconds_since(t0);
    interval_compute_s += dt;
    session_compute_s += dt;
    interval_tokens += tok_per_step;
    loss_acc += step_loss;
    loss_n += 1;
    if (!std::isfinite(step_loss)) fail("training diverged at step " + std::to_string(state.step) + " (loss is " +
                                        std::to_string(step_loss) + "); lower lr or raise warmup_steps");

    const bool last = state.step == cfg.steps;
    const bool do_eval = root && (last || (cfg.eval_every > 0 && state.step % cfg.eval_every == 0));
    const bool do_log = root && (do_eval || state.step % cfg.log_every == 0 || state.step == stop_at);
    if (do_eval) last_val = evaluate(model, eval_windows, device);
    if (do_log) {
      last_train = loss_acc / static_cast<double>(loss_n);
      const double tps = interval_compute_s > 0 ? interval_tokens / interval_compute_s : 0;
      nlohmann::json m = {{"step", state.step},
                          {"tokens", state.tokens},
                          {"train_loss", num_or_null(last_train)},
                          {"val_loss", do_eval ? num_or_null(last_val) : nlohmann::json(nullptr)},
                          {"lr", lr},
                          {"grad_norm", num_or_null(grad_norm)},
                          {"tokens_per_s", tps},
                          {"elapsed_s", elapsed_before + seconds_since(session_start)}};
      metrics << m.dump() << "\n";
      metrics.flush();
      loss_acc = 0;
      loss_n = 0;
      interval_tokens = 0;
      interval_compute_s = 0;
    }
    snapshot(state.step);
    if (bar)
      bar->update(static_cast<double>(state.tokens - start_tokens),
                  "loss " + fmt("%.3f", std::isfinite(last_train) ? last_train : step_loss) +
                      (std::isfinite(last_val) ? " val " + fmt("%.3f", last_val) : "") + " lr " + fmt("%.1e", lr));
    const bool do_ckpt = last || state.step == stop_at || (cfg.checkpoint_every > 0 && state.step % cfg.checkpoint_every == 0);
    if (do_ckpt) {
      state.sampler = sampler.state();
      state.elapsed_s = elapsed_before + seconds_since(session_start);
      if (root) save_checkpoint(ckpt_root, state, model, *adamw, vmap_ptr, cfg.keep_checkpoints);
    }
  }
  if (dp) dp->barrier();
  if (root && state.step == cfg.steps) {
    models::save_model_dir(model, out + "/model", vmap_ptr);
    nlohmann::json s = {{"name", cfg.name},
                        {"steps", state.step},
                        {"tokens", state.tokens},
                        {"final_train_loss", num_or_null(last_train)},
                        {"final_val_loss", num_or_null(last_val)},
                        {"elapsed_s", elapsed_before + seconds_since(session_start)},
                        {"world_size", world},
                        {"device", opt.device},
                        {"train_path", fast ? "fast_attn_only" : "autograd"},
                        {"threads", opt.threads}};
    write_file_atomic(out + "/summary.json", s.dump(2) + "\n");
  }
  if (bar)
    bar->finish("loss " + fmt("%.3f", last_train) + (std::isfinite(last_val) ? " val " + fmt("%.3f", last_val) : ""));
  sum.steps = state.step;
  sum.tokens = state.tokens;
  sum.train_loss = last_train;
  sum.val_loss = last_val;
  sum.wall_s = seconds_since(t_start);
  sum.elapsed_s = elapsed_before + seconds_since(session_start);
  sum.tokens_per_s = session_compute_s > 0 ? (state.tokens - start_tokens) / session_compute_s : 0;
  return sum;
}

}  // namespace circuitlab::train
