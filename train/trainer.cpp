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
#include "core/json_fields.h"
#include "core/progress.h"
#include "data/shards.h"
#include "models/hooked_transformer.h"
#include "models/model_dir.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/fast_transformer.h"
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
    fail("device: expected cpu, cuda or cuda:N, got '" + s + "'");
  }
  if (d->is_cuda() && !torch::cuda::is_available())
    fail("device " + s + ": no CUDA device is available to this LibTorch build (set `device` to cpu)");
  if (!d->is_cpu() && !d->is_cuda()) fail("device: expected cpu, cuda or cuda:N, got '" + s + "'");
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

std::vector<uint64_t> run_token_counts(const std::string& data_dir) {
  const std::string counts_path = data_dir + "/token_counts.json";
  if (file_exists(counts_path)) return data::load_token_counts(counts_path);
  auto counts = data::count_tokens(data::TokenShard(data_dir + "/train.bin"));
  counts.resize(50257);
  return counts;
}

std::optional<data::VocabMap> run_vocab_map(const std::string& data_dir, int d_vocab) {
  if (d_vocab >= 50257) return std::nullopt;  // as TrainingRun::open_data
  return data::build_top_n_vocab(run_token_counts(data_dir), d_vocab - 1);
}

namespace {

// Extra nats per val token when a compact model's "other" predictions are scored over the full
// GPT-2 vocabulary (data::OtherBucketUnigram), and the share of val targets inside the map, over
// exactly the targets the eval windows hold (window w: tokens w·T + 1 .. w·T + T).
struct FullVocabScore {
  double offset = 0, coverage = 1;
};
FullVocabScore full_vocab_score(const data::TokenShard& val, int64_t windows, int64_t T, const data::VocabMap& vmap,
                                const std::vector<uint64_t>& counts) {
  const data::OtherBucketUnigram bucket(vmap, counts);
  double extra = 0;
  int64_t n = 0, inside = 0;
  for (int64_t w = 0; w < windows; ++w)
    for (int64_t t = 1; t <= T; ++t, ++n) {
      const int32_t id = static_cast<int32_t>(val[static_cast<size_t>(w * T + t)]);
      extra += bucket.nats(id);
      inside += vmap.to_compact(id) != vmap.other_id();
    }
  return {n > 0 ? extra / static_cast<double>(n) : 0.0, n > 0 ? static_cast<double>(inside) / static_cast<double>(n) : 1.0};
}

// One training run from its config to its run directory: the steps of run_training.
class TrainingRun {
 public:
  TrainingRun(const TrainConfig& cfg, const RunOptions& opt) : cfg_(cfg), opt_(opt), root_(opt.rank == 0) {}

  RunSummary run() {
    const auto t_start = Clock::now();
    open_data();
    build_model();
    open_run_dir();
    train_loop();
    finish();
    sum_.wall_s = seconds_since(t_start);
    return sum_;
  }

 private:
  const TrainConfig& cfg_;
  const RunOptions& opt_;
  const bool root_;
  torch::Device device_{torch::kCPU};
  int64_t T_ = 0, micro_b_ = 0;
  std::optional<data::VocabMap> vmap_;
  std::unique_ptr<data::BatchSampler> sampler_;
  std::unique_ptr<data::EvalWindows> eval_windows_;
  FullVocabScore full_vocab_;
  SpanRepeat span_repeat_{};
  std::unique_ptr<DataParallel> dp_;
  models::HookedTransformer model_{nullptr};
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::unique_ptr<FastTransformer> fast_;
  std::string out_, ckpt_root_, snap_root_, metrics_path_;
  std::set<int64_t> snap_set_;
  TrainerState state_;
  bool resumed_ = false;
  std::ofstream metrics_;
  double last_val_ = NAN, last_train_ = NAN, session_compute_s_ = 0, elapsed_before_ = 0;
  int64_t start_tokens_ = 0;
  Clock::time_point session_start_;
  RunSummary sum_;

  const data::VocabMap* vmap_ptr() const { return vmap_ ? &*vmap_ : nullptr; }
  void open_data();
  void build_model();
  void open_run_dir();
  void snapshot(int64_t step);
  void train_loop();
  double step_gradients();
  void log_metrics(double lr, double grad_norm, bool evaluated, double& loss_acc, int64_t& loss_n,
                   int64_t& interval_tokens, double& interval_compute_s);
  void finish();
};

void TrainingRun::open_data() {
  device_ = parse_device(opt_.device);
  if (opt_.threads < 1) fail("threads: must be >= 1, got " + std::to_string(opt_.threads));
  at::set_num_threads(opt_.threads);
  set_blas_threads(opt_.threads);
  const std::string train_path = opt_.data_dir + "/train.bin", val_path = opt_.data_dir + "/val.bin";
  for (const auto& p : {train_path, val_path})
    if (!file_exists(p)) fail(p + " does not exist (run `circuitlab prepare` first, or point `data_dir` at a prepared directory)");
  auto train_shard = std::make_shared<const data::TokenShard>(train_path);
  auto val_shard = std::make_shared<const data::TokenShard>(val_path);
  // Training counts, read (or counted over train.bin) once: they pick the compact vocabulary
  // and score its "other" bucket.
  std::vector<uint64_t> counts;
  if (cfg_.model.d_vocab < 50257) {
    counts = run_token_counts(opt_.data_dir);
    vmap_ = data::build_top_n_vocab(counts, cfg_.model.d_vocab - 1);
  }
  const int world = opt_.world_size;
  if (cfg_.batch_size % (static_cast<int64_t>(world) * cfg_.grad_accum) != 0)
    fail("batch_size " + std::to_string(cfg_.batch_size) + " must be a multiple of world size x grad_accum (" +
         std::to_string(world) + " x " + std::to_string(cfg_.grad_accum) + ")");
  micro_b_ = cfg_.batch_size / world / cfg_.grad_accum;
  T_ = cfg_.model.n_ctx;
  sampler_ = std::make_unique<data::BatchSampler>(train_shard, micro_b_, T_, cfg_.seed, vmap_, opt_.rank, world);
  eval_windows_ = std::make_unique<data::EvalWindows>(val_shard, std::min<int64_t>(32, cfg_.eval_windows), T_,
                                                      cfg_.eval_windows, vmap_);
  if (vmap_)
    full_vocab_ = full_vocab_score(*val_shard, eval_windows_->num_windows(), T_, *vmap_, counts);
  span_repeat_ = SpanRepeat{cfg_.span_repeat_prob, cfg_.span_repeat_min_len, cfg_.span_repeat_adjacent,
                            cfg_.seed ^ 0x5eedull};
}

void TrainingRun::build_model() {
  if (opt_.world_size > 1) dp_ = std::make_unique<DataParallel>(opt_.rank, opt_.world_size, opt_.master);
  torch::manual_seed(cfg_.seed);
  models::ModelConfig mcfg = cfg_.model;
  mcfg.seed = static_cast<int>(cfg_.seed);
  model_ = models::HookedTransformer(mcfg);
  if (cfg_.pos_init_std > 0) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg_.seed ^ 0x9051ull);
    torch::NoGradGuard ng;
    model_->W_pos().normal_(0.0, cfg_.pos_init_std, gen);
  }
  model_->to(device_);
  model_->train();
  auto params = named_trainable_params(model_, cfg_.decay_embeddings);
  for (auto& p : params) params_.push_back(p.param);
  adamw_ = make_adamw(params, {cfg_.lr, cfg_.weight_decay, cfg_.beta1, cfg_.beta2, cfg_.adam_eps, cfg_.decay_embeddings});
  if (dp_) dp_->broadcast_from_root(params_);
  // Hand-written forward + backward for CPU models it covers (autograd otherwise).
  const char* env = std::getenv("CIRCUITLAB_TRAIN_AUTOGRAD");
  const bool forced_autograd = env != nullptr && std::string(env) == "1";
  if (opt_.fast_path && !forced_autograd && FastTransformer::supports(model_))
    fast_ = std::make_unique<FastTransformer>(model_);
}

void TrainingRun::open_run_dir() {
  out_ = opt_.out_dir;
  ckpt_root_ = out_ + "/checkpoints";
  snap_root_ = out_ + "/snapshots";
  metrics_path_ = out_ + "/metrics.jsonl";
  state_.sampler = sampler_->state();
  if (opt_.resume) {
    if (auto last = latest_checkpoint(ckpt_root_)) {
      const std::string saved_cfg_path = out_ + "/train_config.json";
      if (file_exists(saved_cfg_path)) {
        const nlohmann::json saved = json_fields::parse_file(saved_cfg_path);
        json_fields::Object saved_fields(saved, saved_cfg_path);
        if (saved_fields.object("model").raw() != to_json(cfg_)["model"])
          fail(saved_cfg_path + ": the run was trained with another model config; resume with the same preset "
               "and overrides, or train into a new `out_dir`");
      }
      state_ = load_checkpoint(*last, model_, *adamw_, device_);
      sampler_->set_state(state_.sampler);
      resumed_ = true;
      if (root_ && opt_.progress) std::fprintf(stderr, "resuming %s from %s\n", cfg_.name.c_str(), last->c_str());
    } else if (root_ && opt_.progress) {
      std::fprintf(stderr, "no checkpoint in %s: starting %s from step 0\n", ckpt_root_.c_str(), cfg_.name.c_str());
    }
  }
  if (root_) {
    make_dirs(out_);
    if (!resumed_) {  // a fresh run replaces what an earlier run left here
      for (const auto& p : {ckpt_root_, snap_root_, out_ + "/model"}) fs::remove_all(p);
      write_file_atomic(metrics_path_, "");
    } else {
      truncate_metrics(metrics_path_, state_.step);
    }
    write_file_atomic(out_ + "/train_config.json", to_json(cfg_).dump(2) + "\n");
  }
  const auto snaps = snapshot_steps(cfg_.steps, cfg_.snapshots);
  snap_set_ = std::set<int64_t>(snaps.begin(), snaps.end());
  if (!resumed_) snapshot(0);
  if (dp_) dp_->barrier();
  if (root_) {
    metrics_.open(metrics_path_, std::ios::app);
    if (!metrics_) fail(metrics_path_ + ": cannot open for appending");
  }
}

void TrainingRun::snapshot(int64_t step) {
  if (root_ && snap_set_.count(step))
    models::save_model_dir(model_, snap_root_ + "/step_" + std::to_string(step), vmap_ptr());
}

// One optimizer step's gradients (micro-batches accumulated, all-reduced across ranks); returns
// the step's mean loss.
double TrainingRun::step_gradients() {
  double step_loss = 0;
  const int world = opt_.world_size;
  for (int micro = 0; micro < cfg_.grad_accum; ++micro) {
    const uint64_t batch_index = sampler_->state().batches_drawn;
    auto [x, y] = sampler_->next();  // [b, T] each
    if (span_repeat_.prob > 0) {
      auto windows = torch::cat({x, y.slice(/*dim=*/1, T_ - 1, T_)}, /*dim=*/1);  // [b, T+1]
      span_repeat_.apply(windows, (batch_index * world + opt_.rank) * static_cast<uint64_t>(micro_b_));
      x = windows.slice(1, 0, T_);
      y = windows.slice(1, 1, T_ + 1);
    }
    if (fast_) {
      step_loss += fast_->forward_backward(x, y, 1.0 / cfg_.grad_accum) / cfg_.grad_accum;
      continue;
    }
    auto logits = model_->forward(x.to(device_));  // [b, T, V]
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.to(device_).reshape({-1}));
    (loss / cfg_.grad_accum).backward();
    step_loss += loss.item<double>() / cfg_.grad_accum;
  }
  if (dp_) {
    std::vector<torch::Tensor> grads;
    for (auto& p : params_)
      if (p.grad().defined()) grads.push_back(p.mutable_grad());
    std::vector<double> extras{step_loss};
    dp_->average(grads, extras);
    step_loss = extras[0];
  }
  return step_loss;
}

void TrainingRun::train_loop() {
  const LrSchedule schedule{cfg_.lr, cfg_.min_lr, cfg_.warmup_steps, cfg_.steps};
  const int64_t start_step = state_.step;
  start_tokens_ = state_.tokens;
  const int64_t tok_per_step = cfg_.tokens_per_step();
  std::unique_ptr<ProgressBar> bar;
  if (root_ && opt_.progress && start_step < cfg_.steps)
    bar = std::make_unique<ProgressBar>("train " + cfg_.name, static_cast<double>((cfg_.steps - start_step) * tok_per_step), "tok");
  double loss_acc = 0, interval_compute_s = 0;
  int64_t loss_n = 0, interval_tokens = 0;
  elapsed_before_ = state_.elapsed_s;
  session_start_ = Clock::now();
  const int64_t stop_at = opt_.stop_after >= 0 ? std::min(cfg_.steps, opt_.stop_after) : cfg_.steps;

  while (state_.step < stop_at) {
    const auto t0 = Clock::now();
    const double lr = schedule.at(state_.step);
    set_lr(*adamw_, lr);
    adamw_->zero_grad();
    const double step_loss = step_gradients();
    double grad_norm;
    if (cfg_.grad_clip > 0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(params_, cfg_.grad_clip);
    } else {
      double sq = 0;
      for (auto& p : params_)
        if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
      grad_norm = std::sqrt(sq);
    }
    adamw_->step();
    state_.step += 1;
    state_.tokens += tok_per_step;
    const double dt = seconds_since(t0);
    interval_compute_s += dt;
    session_compute_s_ += dt;
    interval_tokens += tok_per_step;
    loss_acc += step_loss;
    loss_n += 1;
    if (!std::isfinite(step_loss)) fail("training diverged at step " + std::to_string(state_.step) + " (loss is " +
                                        std::to_string(step_loss) + "); lower lr or raise warmup_steps");

    const bool last = state_.step == cfg_.steps;
    const bool do_eval = root_ && (last || (cfg_.eval_every > 0 && state_.step % cfg_.eval_every == 0));
    const bool do_log = root_ && (do_eval || state_.step % cfg_.log_every == 0 || state_.step == stop_at);
    if (do_eval) last_val_ = evaluate(model_, *eval_windows_, device_);
    if (do_log) log_metrics(lr, grad_norm, do_eval, loss_acc, loss_n, interval_tokens, interval_compute_s);
    snapshot(state_.step);
    if (bar)
      bar->update(static_cast<double>(state_.tokens - start_tokens_),
                  "loss " + fmt("%.3f", std::isfinite(last_train_) ? last_train_ : step_loss) +
                      (std::isfinite(last_val_) ? " val " + fmt("%.3f", last_val_) : "") + " lr " + fmt("%.1e", lr));
    const bool do_ckpt = last || state_.step == stop_at || (cfg_.checkpoint_every > 0 && state_.step % cfg_.checkpoint_every == 0);
    if (do_ckpt) {
      state_.sampler = sampler_->state();
      state_.elapsed_s = elapsed_before_ + seconds_since(session_start_);
      if (root_) save_checkpoint(ckpt_root_, state_, model_, *adamw_, vmap_ptr(), cfg_.keep_checkpoints);
    }
  }
  if (bar)
    bar->finish("loss " + fmt("%.3f", last_train_) + (std::isfinite(last_val_) ? " val " + fmt("%.3f", last_val_) : ""));
}

void TrainingRun::log_metrics(double lr, double grad_norm, bool evaluated, double& loss_acc, int64_t& loss_n,
                              int64_t& interval_tokens, double& interval_compute_s) {
  last_train_ = loss_acc / static_cast<double>(loss_n);
  const double tps = interval_compute_s > 0 ? interval_tokens / interval_compute_s : 0;
  nlohmann::json m = {{"step", state_.step},
                      {"tokens", state_.tokens},
                      {"train_loss", num_or_null(last_train_)},
                      {"val_loss", evaluated ? num_or_null(last_val_) : nlohmann::json(nullptr)},
                      {"lr", lr},
                      {"grad_norm", num_or_null(grad_norm)},
                      {"tokens_per_s", tps},
                      {"elapsed_s", elapsed_before_ + seconds_since(session_start_)}};
  if (evaluated && vmap_) {  // compact vocabulary: the loss over the full GPT-2 vocabulary beside it
    m["val_loss_full_vocab"] = num_or_null(last_val_ + full_vocab_.offset);
    m["val_vocab_coverage"] = full_vocab_.coverage;
  }
  metrics_ << m.dump() << "\n";
  metrics_.flush();
  loss_acc = 0;
  loss_n = 0;
  interval_tokens = 0;
  interval_compute_s = 0;
}

void TrainingRun::finish() {
  if (dp_) dp_->barrier();
  if (root_ && state_.step == cfg_.steps) {
    models::save_model_dir(model_, out_ + "/model", vmap_ptr());
    nlohmann::json s = {{"name", cfg_.name},
                        {"steps", state_.step},
                        {"tokens", state_.tokens},
                        {"final_train_loss", num_or_null(last_train_)},
                        {"final_val_loss", num_or_null(last_val_)},
                        // Full GPT-2 vocabulary (data::OtherBucketUnigram): equals final_val_loss
                        // for full-vocabulary models.
                        {"final_val_loss_full_vocab", num_or_null(last_val_ + full_vocab_.offset)},
                        {"val_vocab_coverage", full_vocab_.coverage},
                        {"elapsed_s", elapsed_before_ + seconds_since(session_start_)},
                        {"world_size", opt_.world_size},
                        {"device", opt_.device},
                        {"train_path", fast_ ? fast_->path_name() : "autograd"},
                        {"threads", opt_.threads}};
    write_file_atomic(out_ + "/summary.json", s.dump(2) + "\n");
  }
  sum_.steps = state_.step;
  sum_.tokens = state_.tokens;
  sum_.train_loss = last_train_;
  sum_.val_loss = last_val_;
  sum_.val_loss_full_vocab = last_val_ + full_vocab_.offset;
  sum_.elapsed_s = elapsed_before_ + seconds_since(session_start_);
  sum_.tokens_per_s = session_compute_s_ > 0 ? (state_.tokens - start_tokens_) / session_compute_s_ : 0;
}

}  // namespace

RunSummary run_training(const TrainConfig& cfg, const RunOptions& opt) {
  cfg.validate("train config '" + cfg.name + "'");
  return TrainingRun(cfg, opt).run();
}

}  // namespace circuitlab::train
