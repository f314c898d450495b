// Subcommand of the train layer (see apps/commands.h): `circuitlab train`. Parses options,
// resolves the preset with overrides, spawns local data-parallel workers for --nproc, and
// calls train::run_training. The loop itself lives in train/.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/local_workers.h"
#include "core/error.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace circuitlab::apps {

namespace {

struct TrainArgs {
  std::string preset = "attn2l", data = "runs/data/default", out, device = "cpu", master;
  int threads = 1, nproc = 1, rank = 0, world_size = 1;
  int64_t steps = -1, stop_after = -1;
  bool resume = false, quiet = false, show_config = false;
  std::vector<std::string> overrides, sets;
};

train::TrainConfig resolve(const TrainArgs& a) {
  nlohmann::json j = train::load_preset_json(a.preset);
  std::vector<std::string> all = a.sets;
  all.insert(all.end(), a.overrides.begin(), a.overrides.end());
  if (a.steps > 0) all.push_back("steps=" + std::to_string(a.steps));
  train::apply_overrides(j, all);
  return train::train_config_from_json(j, train::find_preset(a.preset));
}

void run(const TrainArgs& a) {
  set_threads(a.threads);
  train::TrainConfig cfg = resolve(a);
  if (a.show_config) {
    std::printf("%s\n", train::to_json(cfg).dump(2).c_str());
    return;
  }
  train::RunOptions ro;
  ro.data_dir = a.data;
  ro.out_dir = a.out.empty() ? "runs/" + cfg.name : a.out;
  ro.resume = a.resume;
  ro.device = a.device;
  ro.threads = a.threads;
  ro.progress = !a.quiet;
  ro.stop_after = a.stop_after;

  LocalWorkers workers;
  if (a.nproc > 1) {
    if (a.world_size > 1) fail("--nproc spawns local workers; do not combine it with --world-size/--rank");
    workers = spawn_local_workers(a.nproc);  // ranks 1..N-1: this command line with --rank r
    ro.rank = 0;
    ro.world_size = a.nproc;
    ro.master = workers.master;
  } else {
    ro.rank = a.rank;
    ro.world_size = a.world_size;
    if (a.world_size > 1 && a.master.empty()) fail("--world-size > 1 needs --master host:port (rank 0's address)");
    if (!a.master.empty()) ro.master = a.master;
  }

  train::RunSummary s;
  try {
    s = train::run_training(cfg, ro);
  } catch (...) {
    workers.kill_all();  // the workers we spawned would wait for us
    throw;
  }
  workers.wait_all();
  if (ro.rank == 0 && !a.quiet)
    std::printf("%s: %lld steps, %.2fM tokens, train loss %.4f, val loss %.4f, %.1f s (%.1fk tok/s)%s%s\n",
                cfg.name.c_str(), static_cast<long long>(s.steps), s.tokens / 1e6, s.train_loss, s.val_loss,
                s.wall_s, s.tokens_per_s / 1e3, s.steps == cfg.steps ? " -> " : "",
                s.steps == cfg.steps ? (ro.out_dir + "/model").c_str() : "");
}

}  // namespace

void register_train_commands(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a toy transformer from a preset on token shards");
  cmd->footer(
      "Presets: configs/<name>.json (attn0l, attn1l, attn2l, attn2l_natural, mlp2l, owt_attn1l, owt_attn2l...).\n"
      "Overrides: key=value after the options (or --set key=value), e.g. steps=500 lr=1e-3 model.d_model=64.\n"
      "Writes <out>/train_config.json, metrics.jsonl, checkpoints/, snapshots/, model/ and summary.json.");
  cmd->add_option("--preset", a->preset, "Preset name in configs/ or a .json path")->capture_default_str();
  cmd->add_option("--data", a->data, "Directory with train.bin and val.bin (circuitlab prepare)")->capture_default_str();
  cmd->add_option("--out", a->out, "Run directory (default: runs/<preset name>)");
  cmd->add_option("--steps", a->steps, "Optimizer steps (overrides the preset)");
  cmd->add_option("--threads", a->threads, "Intra-op threads per process")->capture_default_str();
  cmd->add_flag("--resume", a->resume, "Continue from the newest checkpoint in --out (bit-identical on CPU)");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--nproc", a->nproc, "Data parallel: spawn this many local processes (Gloo on loopback)");
  cmd->add_option("--rank", a->rank, "Data parallel over machines: this process's rank");
  cmd->add_option("--world-size", a->world_size, "Data parallel over machines: number of processes");
  cmd->add_option("--master", a->master, "Data parallel over machines: rank 0's host:port (TCPStore)");
  cmd->add_option("--set", a->sets, "Override a preset field: key=value (repeatable)");
  cmd->add_option("overrides", a->overrides, "Overrides key=value (same as --set)");
  cmd->add_flag("--quiet", a->quiet, "No progress bar and no summary line");
  cmd->add_flag("--show-config", a->show_config, "Print the resolved config and exit");
  cmd->add_option("--stop-after", a->stop_after, "Stop after this many steps (checkpointing), as if interrupted");
  cmd->callback([a] { run(*a); });
}

}  // namespace circuitlab::apps
