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
  fsync_dir(tmp);
  if (fs::exists(final_dir)) {
    const std::string old = final_dir + ".old-" + std::to_string(::getpid());
    fs::rename(final_dir, old);
    fs::remove_all(old);
  }
  fs::rename(tmp, final_dir);
  fsync_dir(root);
  auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i]);
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

}  // namespace

SaeTrainSummary run_sae_training(const SaeTrainOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  // --- everything that can be wrong with the inputs fails before anything is written ---
  if (opt.out_dir.empty()) fail("out: an output directory is needed");
  if (opt.batch_tokens < 1) fail("batch_tokens: must be >= 1, got " + std::to_string(opt.batch_tokens));
  const int world = std::max(1, opt.world_size);
  const bool root = opt.rank == 0;
  if (opt.batch_tokens % world != 0)
    fail("batch_tokens: " + std::to_string(opt.batch_tokens) + " is not a multiple of the " + std::to_string(world) +
         " data-parallel processes");
  const int64_t total_steps = opt.tokens / opt.batch_tokens;
  if (total_steps < 1)
    fail("tokens: " + std::to_string(opt.tokens) + " is less than one batch of " + std::to_string(opt.batch_tokens) +
         " (zero training tokens)");
  models::LoadedModel lm = models::load_model_dir(opt.model_dir);
  lm.model->eval();
  auto shard = std::make_shared<const data::TokenShard>(shard_path(opt.data_dir));
  ActivationStoreOptions so;
  so.hooks = opt.hooks;
  so.hook_head_index = opt.hook_head_index;
  so.context = opt.context;
  so.batch_tokens = opt.batch_tokens / world;
  so.rank = opt.rank;
  so.world_size = world;
  so.round_batches = opt.round_batches;
  so.seed = opt.seed;
  ActivationStore store(lm.model, shard, lm.vocab_map, so);
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

  std::unique_ptr<DataParallel> dp;
  if (world > 1) dp = std::make_unique<DataParallel>(opt.rank, world, opt.master);

  // Rank 0's whole state of SAE i into every rank (after steps that read a rank's own batch).
  auto sync_from_root = [&](size_t i) {
    if (!dp) return;
    std::map<std::string, torch::Tensor> t = states[i].tensors();
    std::vector<torch::Tensor> ts;
    for (auto& [n, v] : t) ts.push_back(v.clone());
    dp->broadcast_from_root(ts);
    size_t q = 0;
    for (auto& [n, v] : t) v = ts[q++];
    states[i].load_tensors(t, "data-parallel broadcast");
  };

  // --- run directory ---
  const std::string ckpt_root = opt.out_dir + "/checkpoints";
  const std::string metrics_path = opt.out_dir + "/metrics.jsonl";
  const std::string cfg_path = opt.out_dir + "/sae_train_config.json";
  const json cfg_json = run_config(opt, hooks);
  Checkpoint ck;
  bool resumed = false;
  if (opt.resume) {
    if (!file_exists(cfg_path)) fail(opt.out_dir + ": nothing to resume (no sae_train_config.json)");
    const json old = json_fields::parse_file(cfg_path);
    for (auto it = cfg_json.begin(); it != cfg_json.end(); ++it)
      if (!old.contains(it.key()) || old[it.key()] != it.value())
        fail(cfg_path + ": field '" + it.key() + "' was " + (old.contains(it.key()) ? old[it.key()].dump() : "absent") +
             ", this run asks " + it.value().dump() + " (a resume continues the same run)");
    if (auto latest = latest_checkpoint(ckpt_root)) {
      ck = load_sae_checkpoint(*latest, states);
      resumed = true;
      if (root) truncate_metrics(metrics_path, ck.step);
    }
  }
  if (root) make_dirs(opt.out_dir);
  if (!resumed) {
    if (root) {
      write_file_atomic(cfg_path, cfg_json.dump(2) + "\n");
      write_file_atomic(metrics_path, "");
    }
    const std::vector<torch::Tensor>& sample = store.round(0);
    for (size_t i = 0; i < states.size(); ++i) {
      states[i].init(sample[i], opt.seed + i, opt.geometric_median);
      sync_from_root(i);  // every rank starts from rank 0's initialisation
    }
  } else {
    store.set_state(ck.store);
  }
  std::ofstream metrics;
  if (root) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) fail(metrics_path + ": cannot open for appending");
  }

  const int64_t every = opt.checkpoint_every > 0 ? opt.checkpoint_every : std::max<int64_t>(1, total_steps / 10);
  std::optional<ProgressBar> bar;
  if (opt.progress && root)
    bar.emplace("sae " + std::string(models::sae_architecture_name(opt.architecture)),
                static_cast<double>(total_steps * opt.batch_tokens), "tok");
  SaeTrainSummary sum;
  sum.l0.assign(hooks.size(), 0);
  sum.explained_variance.assign(hooks.size(), 0);
  sum.dead_fraction.assign(hooks.size(), 0);
  const int64_t resample_every = opt.architecture != models::SaeArchitecture::Standard ? 0
                                 : opt.resample_every >= 0                             ? opt.resample_every
                                                                                       : std::max<int64_t>(1, total_steps / 8);
  int64_t resampled = 0;
  std::vector<SaeGrads> grads(hooks.size());  // buffers reused across steps
  const auto t_loop = std::chrono::steady_clock::now();
  const int64_t first_step = ck.step;
  int64_t step = ck.step;
  while (step < total_steps) {
    const std::vector<torch::Tensor> batches = store.next();
    std::vector<SaeStepStats> st(hooks.size());
    for (size_t i = 0; i < hooks.size(); ++i) {
      SaeGrads& g = grads[i];
      st[i] = states[i].compute_grads(batches[i], g);
      if (dp) {  // the mean gradient of the global batch; firing counts and tokens summed
        std::vector<torch::Tensor> ts = {g.W_encT, g.W_dec, g.b_enc, g.b_dec, g.fired};
        if (g.log_threshold.defined()) ts.push_back(g.log_threshold);
        std::vector<double> ex = {st[i].loss, st[i].mse, st[i].sparsity_loss, st[i].aux_loss, st[i].l0,
                                  st[i].explained_variance, g.min_act};
        dp->average(ts, ex);
        g.fired.mul_(static_cast<double>(world));
        g.tokens *= world;
        st[i].loss = ex[0], st[i].mse = ex[1], st[i].sparsity_loss = ex[2], st[i].aux_loss = ex[3];
        st[i].l0 = ex[4], st[i].explained_variance = ex[5], g.min_act = ex[6];
      }
      states[i].apply(g);
    }
    ++step;
    if (resample_every > 0 && step % resample_every == 0 && step <= total_steps * 3 / 4)
      for (size_t i = 0; i < hooks.size(); ++i) {
        resampled += states[i].resample_dead(batches[i], splitmix64(opt.seed + 1000003ull * i) + static_cast<uint64_t>(step));
        sync_from_root(i);
      }
    ck.tokens += opt.batch_tokens;
    for (size_t i = 0; i < hooks.size(); ++i) {
      sum.l0[i] = st[i].l0;
      sum.explained_variance[i] = st[i].explained_variance;
      sum.dead_fraction[i] = states[i].dead_fraction();
    }
    const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
    if (root && (step % opt.log_every == 0 || step == total_steps)) {
      for (size_t i = 0; i < hooks.size(); ++i) {
        json m = {{"step", step},
                  {"tokens", ck.tokens},
                  {"hook", hooks[i]},
                  {"loss", st[i].loss},
                  {"mse", st[i].mse},
                  {"sparsity_loss", st[i].sparsity_loss},
                  {"aux_loss", st[i].aux_loss},
                  {"l0", st[i].l0},
                  {"explained_variance", st[i].explained_variance},
                  {"dead_fraction", sum.dead_fraction[i]},
                  {"resampled_total", resampled},
                  {"tokens_per_s", loop_s > 0 ? (step - first_step) * opt.batch_tokens / loop_s : 0.0}};
        metrics << m.dump() << "\n";
      }
      metrics.flush();
    }
    if (bar) {
      char extra[160];
      std::snprintf(extra, sizeof extra, "L0 %.1f  EV %.3f  dead %.3f", st[0].l0, st[0].explained_variance,
                    sum.dead_fraction[0]);
      bar->update(static_cast<double>(step * opt.batch_tokens), extra);
    }
    const bool stop = opt.stop_after >= 0 && step >= opt.stop_after;
    if (root && (step % every == 0 || step == total_steps || stop)) {
      ck.step = step;
      ck.store = store.state();
      ck.elapsed_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      save_sae_checkpoint(ckpt_root, ck, states, opt.keep_checkpoints);
      ck.elapsed_s -= std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    }
    if (stop && step < total_steps) {
      if (bar) bar->finish("stopped at step " + std::to_string(step));
      sum.steps = step;
      sum.tokens = ck.tokens;
      return sum;
    }
  }
  if (bar) bar->finish();
  const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();

  for (size_t i = 0; i < hooks.size(); ++i) {
    const std::string dir = sae_dir_for(opt.out_dir, hooks, hooks[i]);
    if (root) models::save_sae(states[i].export_sae(), dir);
    sum.sae_dirs.push_back(dir);
  }
  sum.steps = step;
  sum.tokens = ck.tokens;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  sum.tokens_per_s = loop_s > 0 ? (step - first_step) * opt.batch_tokens / loop_s : 0.0;
  json s = {{"steps", sum.steps},       {"tokens", sum.tokens}, {"tokens_per_s", sum.tokens_per_s},
            {"sae_dirs", sum.sae_dirs}, {"hooks", hooks},       {"l0_last_batch", sum.l0},
            {"explained_variance_last_batch", sum.explained_variance}, {"dead_fraction", sum.dead_fraction}};
  if (root) write_file_atomic(opt.out_dir + "/summary.json", s.dump(2) + "\n");
  if (dp) dp->barrier();
  return sum;
}

}  // namespace circuitlab::train
