// SAE training from a model: store -> one SaeTrainingState per hook -> SAELens dirs. See sae_trainer.h.
#include "train/sae_trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "core/progress.h"
#include "core/splitmix.h"
#include "models/hook_names.h"
#include "models/model_dir.h"
#include "models/safetensors.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/sae_activation_store.h"

namespace circuitlab::train {

namespace fs = std::filesystem;
using nlohmann::json;

std::string sae_dir_for(const std::string& out_dir, const std::vector<std::string>& hooks, const std::string& hook) {
  return hooks.size() == 1 ? out_dir : out_dir + "/" + hook;
}

namespace {

constexpr const char* kSaeStateFormat = "circuitlab-sae-train-state-1";

// What must be equal for a resume to continue the same run (sae_train_config.json).
json run_config(const SaeTrainOptions& o, const std::vector<std::string>& hooks) {
  const SaeStepOptions& s = o.step;
  return {{"model_dir", o.model_dir},
          {"data", o.data_dir},
          {"hooks", hooks},
          {"hook_head_index", o.hook_head_index},
          {"architecture", models::sae_architecture_name(o.architecture)},
          {"d_sae", o.d_sae},
          {"k", o.k},
          {"batch_tokens", o.batch_tokens},
          {"context", o.context},
          {"round_batches", o.round_batches},
          {"geometric_median", o.geometric_median},
          {"resample_every", o.resample_every},
          {"seed", o.seed},
          {"world_size", std::max(1, o.world_size)},
          {"lr", s.lr},
          {"beta1", s.beta1},
          {"beta2", s.beta2},
          {"eps", s.eps},
          {"l1_coefficient", s.l1_coefficient},
          {"aux_coefficient", s.aux_coefficient},
          {"k_aux", s.k_aux},
          {"dead_tokens", s.dead_tokens},
          {"jumprelu_bandwidth", s.jumprelu_bandwidth},
          {"jumprelu_init_threshold", s.jumprelu_init_threshold},
          {"batchtopk_threshold_lr", s.batchtopk_threshold_lr}};
}

void truncate_metrics(const std::string& path, int64_t keep_step) {
  if (!file_exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step")) continue;  // a torn last line after a kill
    if (j["step"].get<int64_t>() <= keep_step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

std::string shard_path(const std::string& data) {
  if (is_directory(data)) {
    if (!file_exists(data + "/train.bin")) fail(data + ": no train.bin (expected a directory of token shards)");
    return data + "/train.bin";
  }
  if (!file_exists(data)) fail(data + ": no such shard file or directory");
  return data;
}

struct Checkpoint {
  int64_t step = 0, tokens = 0;
  double elapsed_s = 0;
  ActivationStore::State store;
};

void save_sae_checkpoint(const std::string& root, const Checkpoint& c, const std::vector<SaeTrainingState>& states,
                         int64_t keep) {
  make_dirs(root);
  const std::string final_dir = root + "/step_" + std::to_string(c.step);
  const std::string tmp = root + "/.tmp-step_" + std::to_string(c.step) + "-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  make_dirs(tmp);
  for (size_t i = 0; i < states.size(); ++i)
    models::save_safetensors(tmp + "/sae_" + std::to_string(i) + ".safetensors", states[i].tensors());
  const json j = {{"format", kSaeStateFormat},  {"step", c.step},           {"tokens", c.tokens},
                  {"elapsed_s", c.elapsed_s},    {"store_round", c.store.round}, {"store_batch", c.store.batch}};
  write_file_atomic(tmp + "/state.json", j.dump(2) + "\n");  // last: marks the dir complete
  commit_checkpoint_dir(root, tmp, final_dir, keep);
}

Checkpoint load_sae_checkpoint(const std::string& dir, std::vector<SaeTrainingState>& states) {
  const std::string state_path = dir + "/state.json";
  const json j = json_fields::parse_file(state_path);
  json_fields::Object o(j, state_path);
  if (o.get_or<std::string>("format", "") != kSaeStateFormat)
    fail(state_path + ": not an SAE training state (expected format " + kSaeStateFormat + ")");
  Checkpoint c;
  c.step = o.int_in("step", 0, std::numeric_limits<int64_t>::max());
  c.tokens = o.int_in("tokens", 0, std::numeric_limits<int64_t>::max());
  c.elapsed_s = o.req<double>("elapsed_s");
  c.store.round = o.req<uint64_t>("store_round");
  c.store.batch = o.int_in("store_batch", 0, std::numeric_limits<int64_t>::max());
  for (size_t i = 0; i < states.size(); ++i) {
    const std::string p = dir + "/sae_" + std::to_string(i) + ".safetensors";
    if (!file_exists(p)) fail(p + ": missing (the checkpoint holds fewer SAEs than hooks)");
    states[i].load_tensors(models::load_safetensors(p), p);
  }
  return c;
}

// Inputs that can be wrong fail before anything is loaded or written. Returns the step count.
int64_t checked_total_steps(const SaeTrainOptions& opt, int world) {
  if (opt.out_dir.empty()) fail("out: an output directory is needed");
  if (opt.batch_tokens < 1) fail("batch_tokens: must be >= 1, got " + std::to_string(opt.batch_tokens));
  if (opt.batch_tokens % world != 0)
    fail("batch_tokens: " + std::to_string(opt.batch_tokens) + " is not a multiple of the " + std::to_string(world) +
         " data-parallel processes");
  const int64_t total_steps = opt.tokens / opt.batch_tokens;
  if (total_steps < 1)
    fail("tokens: " + std::to_string(opt.tokens) + " is less than one batch of " + std::to_string(opt.batch_tokens) +
         " (zero training tokens)");
  return total_steps;
}

models::LoadedModel load_eval_model(const std::string& dir) {
  models::LoadedModel lm = models::load_model_dir(dir);
  lm.model->eval();
  return lm;
}

ActivationStoreOptions store_options(const SaeTrainOptions& opt, int world) {
  ActivationStoreOptions so;
  so.hooks = opt.hooks;
  so.hook_head_index = opt.hook_head_index;
  so.context = opt.context;
  so.batch_tokens = opt.batch_tokens / world;
  so.rank = opt.rank;
  so.world_size = world;
  so.round_batches = opt.round_batches;
  so.seed = opt.seed;
  return so;
}

// One (uninitialised) training state per hook of the store.
std::vector<SaeTrainingState> make_states(const SaeTrainOptions& opt, const ActivationStore& store) {
  const std::vector<std::string>& hooks = store.hooks();
  std::vector<SaeTrainingState> states;
  std::string model_name = fs::path(opt.model_dir).filename().string();
  if (model_name.empty()) model_name = fs::path(opt.model_dir).parent_path().filename().string();
  for (size_t i = 0; i < hooks.size(); ++i) {
    models::SaeConfig c;
    c.architecture = opt.architecture;
    c.d_in = store.widths()[i];
    c.d_sae = opt.d_sae > 0 ? opt.d_sae : 8 * c.d_in;
    c.k = (opt.architecture == models::SaeArchitecture::TopK || opt.architecture == models::SaeArchitecture::BatchTopK) ? opt.k : 0;
    c.hook_name = hooks[i];
    const std::string kind = models::hook_kind(hooks[i]);
    c.hook_head_index = (kind == "z" || kind == "q" || kind == "k" || kind == "v") ? opt.hook_head_index : -1;
    c.model_name = model_name;
    c.context_size = store.context();
    c.prepend_bos = false;  // windows of the shard, no BOS added (as the model trained)
    models::validate_sae_config(c, "sae train (" + hooks[i] + ")");
    states.emplace_back(c, opt.step);
  }
  return states;
}

// One run of run_sae_training: setup in the constructor (same order as the inputs are checked,
// loaded and built), then the run directory, the step loop, logging, checkpoints, export.
class SaeRun {
 public:
  explicit SaeRun(const SaeTrainOptions& opt)
      : opt_(opt),
        t_start_(std::chrono::steady_clock::now()),
        world_(std::max(1, opt.world_size)),
        root_(opt.rank == 0),
        total_steps_(checked_total_steps(opt, world_)),
        lm_(load_eval_model(opt.model_dir)),
        shard_(std::make_shared<const data::TokenShard>(shard_path(opt.data_dir))),
        store_(lm_.model, shard_, lm_.vocab_map, store_options(opt, world_)),
        hooks_(store_.hooks()),
        states_(make_states(opt, store_)),
        ckpt_root_(opt.out_dir + "/checkpoints"),
        metrics_path_(opt.out_dir + "/metrics.jsonl"),
        cfg_path_(opt.out_dir + "/sae_train_config.json") {
    if (world_ > 1) dp_ = std::make_unique<DataParallel>(opt.rank, world_, opt.master);
  }

  SaeTrainSummary run();

 private:
  void sync_from_root(size_t i);
  void open_run_dir();
  std::vector<SaeStepStats> train_step(const std::vector<torch::Tensor>& batches);
  void resample(const std::vector<torch::Tensor>& batches, int64_t step);
  void log_metrics(int64_t step, const std::vector<SaeStepStats>& st, double loop_s);
  void checkpoint(int64_t step);
  SaeTrainSummary finish(int64_t step, double loop_s);

  const SaeTrainOptions& opt_;
  const std::chrono::steady_clock::time_point t_start_;
  const int world_;
  const bool root_;
  const int64_t total_steps_;
  models::LoadedModel lm_;
  std::shared_ptr<const data::TokenShard> shard_;
  ActivationStore store_;
  const std::vector<std::string>& hooks_;
  std::vector<SaeTrainingState> states_;
  std::unique_ptr<DataParallel> dp_;
  const std::string ckpt_root_, metrics_path_, cfg_path_;
  Checkpoint ck_;
  std::ofstream metrics_;
  SaeTrainSummary sum_;
  int64_t resampled_ = 0;
  int64_t first_step_ = 0;
  std::vector<SaeGrads> grads_;  // buffers reused across steps
};

// Rank 0's whole state of SAE i into every rank (after steps that read a rank's own batch).
void SaeRun::sync_from_root(size_t i) {
  if (!dp_) return;
  std::map<std::string, torch::Tensor> t = states_[i].tensors();
  std::vector<torch::Tensor> ts;
  for (auto& [n, v] : t) ts.push_back(v.clone());
  dp_->broadcast_from_root(ts);
  size_t q = 0;
  for (auto& [n, v] : t) v = ts[q++];
  states_[i].load_tensors(t, "data-parallel broadcast");
}

// Fresh run: config, empty metrics, initialised SAEs. Resume: the same config, the latest
// checkpoint's SAEs and store position, metrics cut back to it. Then metrics opened to append.
void SaeRun::open_run_dir() {
  const json cfg_json = run_config(opt_, hooks_);
  bool resumed = false;
  if (opt_.resume) {
    if (!file_exists(cfg_path_)) fail(opt_.out_dir + ": nothing to resume (no sae_train_config.json)");
    const json old = json_fields::parse_file(cfg_path_);
    for (auto it = cfg_json.begin(); it != cfg_json.end(); ++it)
      if (!old.contains(it.key()) || old[it.key()] != it.value())
        fail(cfg_path_ + ": field '" + it.key() + "' was " + (old.contains(it.key()) ? old[it.key()].dump() : "absent") +
             ", this run asks " + it.value().dump() + " (a resume continues the same run)");
    if (auto latest = latest_checkpoint(ckpt_root_)) {
      ck_ = load_sae_checkpoint(*latest, states_);
      resumed = true;
      if (root_) truncate_metrics(metrics_path_, ck_.step);
    }
  }
  if (root_) make_dirs(opt_.out_dir);
  if (!resumed) {
    if (root_) {
      write_file_atomic(cfg_path_, cfg_json.dump(2) + "\n");
      write_file_atomic(metrics_path_, "");
    }
    const std::vector<torch::Tensor>& sample = store_.round(0);
    for (size_t i = 0; i < states_.size(); ++i) {
      states_[i].init(sample[i], opt_.seed + i, opt_.geometric_median);
      sync_from_root(i);  // every rank starts from rank 0's initialisation
    }
  } else {
    store_.set_state(ck_.store);
  }
  if (root_) {
    metrics_.open(metrics_path_, std::ios::app);
    if (!metrics_) fail(metrics_path_ + ": cannot open for appending");
  }
}

// Gradients of every SAE on its batch (averaged over ranks), then the update.
std::vector<SaeStepStats> SaeRun::train_step(const std::vector<torch::Tensor>& batches) {
  std::vector<SaeStepStats> st(hooks_.size());
  for (size_t i = 0; i < hooks_.size(); ++i) {
    SaeGrads& g = grads_[i];
    st[i] = states_[i].compute_grads(batches[i], g);
    if (dp_) {  // the mean gradient of the global batch; firing counts and tokens summed
      std::vector<torch::Tensor> ts = {g.W_encT, g.W_dec, g.b_enc, g.b_dec, g.fired};
      if (g.log_threshold.defined()) ts.push_back(g.log_threshold);
      std::vector<double> ex = {st[i].loss, st[i].mse, st[i].sparsity_loss, st[i].aux_loss, st[i].l0,
                                st[i].explained_variance, g.min_act};
      dp_->average(ts, ex);
      g.fired.mul_(static_cast<double>(world_));
      g.tokens *= world_;
      st[i].loss = ex[0], st[i].mse = ex[1], st[i].sparsity_loss = ex[2], st[i].aux_loss = ex[3];
      st[i].l0 = ex[4], st[i].explained_variance = ex[5], g.min_act = ex[6];
    }
    states_[i].apply(g);
  }
  return st;
}

void SaeRun::resample(const std::vector<torch::Tensor>& batches, int64_t step) {
  for (size_t i = 0; i < hooks_.size(); ++i) {
    resampled_ += states_[i].resample_dead(batches[i], splitmix64(opt_.seed + 1000003ull * i) + static_cast<uint64_t>(step));
    sync_from_root(i);
  }
}

void SaeRun::log_metrics(int64_t step, const std::vector<SaeStepStats>& st, double loop_s) {
  for (size_t i = 0; i < hooks_.size(); ++i) {
    json m = {{"step", step},
              {"tokens", ck_.tokens},
              {"hook", hooks_[i]},
              {"loss", st[i].loss},
              {"mse", st[i].mse},
              {"sparsity_loss", st[i].sparsity_loss},
              {"aux_loss", st[i].aux_loss},
              {"l0", st[i].l0},
              {"explained_variance", st[i].explained_variance},
              {"dead_fraction", sum_.dead_fraction[i]},
              {"resampled_total", resampled_},
              {"tokens_per_s", loop_s > 0 ? (step - first_step_) * opt_.batch_tokens / loop_s : 0.0}};
    metrics_ << m.dump() << "\n";
  }
  metrics_.flush();
}

// elapsed_s holds the time of earlier sessions: this session's time is added for the save only.
void SaeRun::checkpoint(int64_t step) {
  ck_.step = step;
  ck_.store = store_.state();
  ck_.elapsed_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
  save_sae_checkpoint(ckpt_root_, ck_, states_, opt_.keep_checkpoints);
  ck_.elapsed_s -= std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
}

// Exports the SAEs and writes summary.json (rank 0).
SaeTrainSummary SaeRun::finish(int64_t step, double loop_s) {
  for (size_t i = 0; i < hooks_.size(); ++i) {
    const std::string dir = sae_dir_for(opt_.out_dir, hooks_, hooks_[i]);
    if (root_) models::save_sae(states_[i].export_sae(), dir);
    sum_.sae_dirs.push_back(dir);
  }
  sum_.steps = step;
  sum_.tokens = ck_.tokens;
  sum_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
  sum_.tokens_per_s = loop_s > 0 ? (step - first_step_) * opt_.batch_tokens / loop_s : 0.0;
  json s = {{"steps", sum_.steps},       {"tokens", sum_.tokens}, {"tokens_per_s", sum_.tokens_per_s},
            {"sae_dirs", sum_.sae_dirs}, {"hooks", hooks_},       {"l0_last_batch", sum_.l0},
            {"explained_variance_last_batch", sum_.explained_variance}, {"dead_fraction", sum_.dead_fraction}};
  if (root_) write_file_atomic(opt_.out_dir + "/summary.json", s.dump(2) + "\n");
  if (dp_) dp_->barrier();
  return sum_;
}

SaeTrainSummary SaeRun::run() {
  open_run_dir();
  const int64_t every = opt_.checkpoint_every > 0 ? opt_.checkpoint_every : std::max<int64_t>(1, total_steps_ / 10);
  std::optional<ProgressBar> bar;
  if (opt_.progress && root_)
    bar.emplace("sae " + std::string(models::sae_architecture_name(opt_.architecture)),
                static_cast<double>(total_steps_ * opt_.batch_tokens), "tok");
  sum_.l0.assign(hooks_.size(), 0);
  sum_.explained_variance.assign(hooks_.size(), 0);
  sum_.dead_fraction.assign(hooks_.size(), 0);
  const int64_t resample_every = opt_.architecture != models::SaeArchitecture::Standard ? 0
                                 : opt_.resample_every >= 0                             ? opt_.resample_every
                                                                                        : std::max<int64_t>(1, total_steps_ / 8);
  grads_.assign(hooks_.size(), SaeGrads());
  const auto t_loop = std::chrono::steady_clock::now();
  first_step_ = ck_.step;
  int64_t step = ck_.step;
  while (step < total_steps_) {
    const std::vector<torch::Tensor> batches = store_.next();
    const std::vector<SaeStepStats> st = train_step(batches);
    ++step;
    if (resample_every > 0 && step % resample_every == 0 && step <= total_steps_ * 3 / 4) resample(batches, step);
    ck_.tokens += opt_.batch_tokens;
    for (size_t i = 0; i < hooks_.size(); ++i) {
      sum_.l0[i] = st[i].l0;
      sum_.explained_variance[i] = st[i].explained_variance;
      sum_.dead_fraction[i] = states_[i].dead_fraction();
    }
    const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
    if (root_ && (step % opt_.log_every == 0 || step == total_steps_)) log_metrics(step, st, loop_s);
    if (bar) {
      char extra[160];
      std::snprintf(extra, sizeof extra, "L0 %.1f  EV %.3f  dead %.3f", st[0].l0, st[0].explained_variance,
                    sum_.dead_fraction[0]);
      bar->update(static_cast<double>(step * opt_.batch_tokens), extra);
    }
    const bool stop = opt_.stop_after >= 0 && step >= opt_.stop_after;
    if (root_ && (step % every == 0 || step == total_steps_ || stop)) checkpoint(step);
    if (stop && step < total_steps_) {
      if (bar) bar->finish("stopped at step " + std::to_string(step));
      sum_.steps = step;
      sum_.tokens = ck_.tokens;
      return sum_;
    }
  }
  if (bar) bar->finish();
  const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
  return finish(step, loop_s);
}

}  // namespace

SaeTrainSummary run_sae_training(const SaeTrainOptions& opt) { return SaeRun(opt).run(); }

}  // namespace circuitlab::train
