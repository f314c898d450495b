// Subcommands of sparse autoencoders: `circuitlab sae train|encode|eval|features|synth`. Thin: flags,
// printing and files; the SAE is models/sae, training train/sae_*, evaluation analysis/sae_eval.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/analysis_json.h"
#include "analysis/sae_eval.h"
#include "analysis/sae_features.h"
#include "apps/cli_io.h"
#include "apps/commands.h"
#include "apps/local_workers.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "data/token_namer.h"
#include "data/tokenizer.h"
#include "models/model_dir.h"
#include "models/sae.h"
#include "train/sae_synth.h"
#include "train/sae_trainer.h"

namespace circuitlab::apps {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The shard an eval reads: <dir>/val.bin (else train.bin), or the file itself.
std::string eval_shard(const std::string& data) {
  if (is_directory(data)) {
    if (file_exists(data + "/val.bin")) return data + "/val.bin";
    if (file_exists(data + "/train.bin")) return data + "/train.bin";
    fail("--data " + data + ": no val.bin or train.bin in it");
  }
  if (!file_exists(data)) fail("--data " + data + ": no such shard file or directory");
  return data;
}

void register_train(CLI::App& sae) {
  auto* cmd = sae.add_subcommand("train", "Train SAEs on a model's hook points from token shards (SAELens dirs)");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  struct Opts {
    train::SaeTrainOptions t;
    std::string hooks, arch = "topk";
    int threads = 1, nproc = 1;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->t.model_dir, "Model directory")->required();
  cmd->add_option("--hook", o->hooks, "Hook point(s), comma-separated (one SAE each, from one forward pass)")->required();
  cmd->add_option("--data", o->t.data_dir, "Token shards: a directory with train.bin, or a .bin file")->required();
  cmd->add_option("--out", o->t.out_dir, "Output: the SAE dir (one hook) or a dir of one subdir per hook")->required();
  cmd->add_option("--arch", o->arch, "topk | batchtopk | jumprelu | relu (standard, L1)");
  cmd->add_option("--d-sae", o->t.d_sae, "Latents (0: 8 x d_in)");
  cmd->add_option("--k", o->t.k, "Active latents per token (TopK, BatchTopK)");
  cmd->add_option("--l1", o->t.step.l1_coefficient, "Sparsity coefficient (relu: L1; jumprelu: L0)");
  cmd->add_option("--tokens", o->t.tokens, "Training tokens");
  cmd->add_option("--batch-tokens", o->t.batch_tokens, "Tokens per step");
  cmd->add_option("--lr", o->t.step.lr, "Adam learning rate");
  cmd->add_option("--seed", o->t.seed, "Seed (windows, shuffle, initialisation)");
  cmd->add_option("--threads", o->threads, "Intra-op threads");
  cmd->add_option("--context", o->t.context, "Window length (0: min(n_ctx, 128))");
  cmd->add_option("--head", o->t.hook_head_index, "hook_z/q/k/v: one head (-1: all heads concatenated)");
  cmd->add_option("--aux-coefficient", o->t.step.aux_coefficient, "AuxK coefficient (TopK family)");
  cmd->add_option("--dead-tokens", o->t.step.dead_tokens, "Tokens without firing after which a latent is dead");
  cmd->add_option("--bandwidth", o->t.step.jumprelu_bandwidth, "JumpReLU STE bandwidth");
  cmd->add_option("--buffer-batches", o->t.round_batches, "Shuffle buffer size, in batches");
  cmd->add_option("--checkpoint-every", o->t.checkpoint_every, "Steps between checkpoints (0: ~10 per run)");
  cmd->add_option("--resample-every", o->t.resample_every,
                  "relu: resample dead latents every N steps (-1: tokens/batch/8; 0: never)");
  cmd->add_flag("--geometric-median", o->t.geometric_median, "Initialise b_dec at the geometric median (else the mean)");
  cmd->add_flag("--resume", o->t.resume, "Continue from the newest checkpoint in --out");
  cmd->add_option("--stop-after", o->t.stop_after, "Stop after this many steps (checkpointed; for tests)");
  cmd->add_option("--nproc", o->nproc, "Data parallel: spawn this many local processes (Gloo on loopback)");
  cmd->add_option("--rank", o->t.rank, "Data parallel over machines: this process's rank");
  cmd->add_option("--world-size", o->t.world_size, "Data parallel over machines: number of processes");
  cmd->add_option("--master", o->t.master, "Data parallel over machines: rank 0's host:port");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->callback([o]() {
    set_threads(o->threads);
    o->t.hooks = split_commas(o->hooks);
    if (o->t.hooks.empty()) fail("--hook: give at least one hook name, e.g. blocks.0.hook_resid_post");
    o->t.architecture = models::parse_sae_architecture(o->arch, "--arch");
    o->t.progress = !o->quiet;
    if (o->nproc < 1) fail("--nproc: must be >= 1");
    if (o->nproc > 1 && o->t.world_size > 1) fail("--nproc spawns local workers; do not combine it with --world-size/--rank");
    if (o->nproc == 1 && o->t.world_size > 1 && o->t.rank > 0) o->quiet = true;
    LocalWorkers workers;
    if (o->nproc > 1) {
      workers = spawn_local_workers(o->nproc);
      o->t.rank = 0;
      o->t.world_size = o->nproc;
      o->t.master = workers.master;
    }
    train::SaeTrainSummary s;
    try {
      s = train::run_sae_training(o->t);
    } catch (...) {
      workers.kill_all();
      throw;
    }
    workers.wait_all();
    if (o->t.rank != 0) return;
    if (s.sae_dirs.empty()) {
      std::printf("stopped after step %lld (%lld tokens); continue with --resume\n", static_cast<long long>(s.steps),
                  static_cast<long long>(s.tokens));
      return;
    }
    std::printf("trained %zu SAE(s): %lld steps, %lld tokens, %.0f tok/s\n", s.sae_dirs.size(),
                static_cast<long long>(s.steps), static_cast<long long>(s.tokens), s.tokens_per_s);
    for (size_t i = 0; i < s.sae_dirs.size(); ++i)
      std::printf("  %s: L0 %.2f, explained variance %.3f (last batch), dead %.3f\n", s.sae_dirs[i].c_str(), s.l0[i],
                  s.explained_variance[i], s.dead_fraction[i]);
  });
}

void register_encode(CLI::App& sae) {
  auto* cmd = sae.add_subcommand("encode", "Latent activations of an SAE on a prompt: [T, d_sae] .npy and top latents");
  struct Opts {
    std::string sae, model, tokens, text, npy;
    bool prepend_bos = true;
    int top = 3, threads = 1;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--sae", o->sae, "SAE directory (SAELens layout)")->required();
  cmd->add_option("--model", o->model, "Model directory")->required();
  auto* t = cmd->add_option("--tokens", o->tokens, "GPT-2 token ids");
  auto* x = cmd->add_option("--text", o->text, "Text");
  t->excludes(x);
  cmd->add_flag("--prepend-bos,!--no-prepend-bos", o->prepend_bos, "Put <|endoftext|> in front (default on)");
  cmd->add_option("--npy", o->npy, "Write the latent activations [T, d_sae] (float32) here");
  cmd->add_option("--top", o->top, "Latents printed per token");
  cmd->add_option("--threads", o->threads, "Intra-op threads");
  cmd->callback([o]() {
    set_threads(o->threads);
    if (o->tokens.empty() && o->text.empty()) fail("sae encode: give --tokens \"ID ID ...\" or --text \"...\"");
    const models::SparseAutoencoder sae = models::load_sae(o->sae);
    models::LoadedModel lm = models::load_model_dir(o->model);
    if (!lm.model->has_hook_point(sae.cfg.hook_name))
      fail(o->sae + "/cfg.json: hook '" + sae.cfg.hook_name + "' is not a hook point of " + o->model);
    std::optional<data::Tokenizer> tok;  // only --text needs the tokenizer's files
    std::vector<int64_t> gpt2;
    if (!o->text.empty()) {
      tok.emplace(models::load_model_tokenizer(o->model));
      for (int32_t id : tok->encode(o->text)) gpt2.push_back(id);
    } else {
      gpt2 = parse_token_ids(o->tokens);
    }
    if (o->prepend_bos) {
      if (!lm.vocab_map && lm.model->cfg().d_vocab <= models::kGpt2Bos)
        fail("sae encode: --prepend-bos puts <|endoftext|> 50256 first, but " + o->model + " has d_vocab " +
             std::to_string(lm.model->cfg().d_vocab) + " and no vocab_map.json (use --no-prepend-bos)");
      gpt2.insert(gpt2.begin(), models::kGpt2Bos);
    }
    if (gpt2.empty()) fail("sae encode: no tokens");
    std::vector<int64_t> ids;
    for (int64_t g : gpt2) {
      if (g < 0 || g > 0x7fffffff) fail("--tokens: id " + std::to_string(g) + " is not a GPT-2 token id");
      if (lm.vocab_map) ids.push_back(lm.vocab_map->to_compact(static_cast<int32_t>(g)));
      else if (g >= lm.model->cfg().d_vocab) fail("--tokens: id " + std::to_string(g) + " is outside the model's vocabulary");
      else ids.push_back(g);
    }
    torch::NoGradGuard ng;
    lm.model->eval();
    const torch::Tensor x = torch::tensor(ids, torch::kLong).unsqueeze(0);
    auto [logits, cache] = models::run_with_cache(lm.model, x, [&](const std::string& n) { return n == sae.cfg.hook_name; });
    const torch::Tensor f = sae.encode(models::sae_input_from_hook(cache.at(sae.cfg.hook_name), sae.cfg));  // [T, S]
    if (!o->npy.empty()) write_npy_f32(o->npy, f);
    const data::VocabMap* vmap = lm.vocab_map ? &*lm.vocab_map : nullptr;
    const data::TokenNamer namer = tok ? data::TokenNamer(&*tok, vmap) : data::TokenNamer::with_default_tokenizer(vmap);
    std::printf("%s at %s: latents [%lld, %lld]%s%s\n", o->sae.c_str(), sae.cfg.hook_name.c_str(),
                static_cast<long long>(f.size(0)), static_cast<long long>(f.size(1)), o->npy.empty() ? "" : " -> ",
                o->npy.c_str());
    const int64_t top = std::min<int64_t>(std::max(o->top, 1), f.size(1));
    auto [vals, idx] = f.topk(top, -1);
    for (int64_t p = 0; p < f.size(0); ++p) {
      std::printf("%4lld %-16s L0 %3lld ", static_cast<long long>(p), ("'" + namer.str(ids[p]) + "'").c_str(),
                  static_cast<long long>((f[p] > 0).sum().item<int64_t>()));
      for (int64_t i = 0; i < top; ++i) {
        const float v = vals[p][i].item<float>();
        if (v <= 0) break;
        std::printf(" %lld:%.3f", static_cast<long long>(idx[p][i].item<int64_t>()), v);
      }
      std::printf("\n");
    }
  });
}

void register_eval(CLI::App& sae) {
  auto* cmd = sae.add_subcommand("eval", "SAELens metrics of an SAE on a model and token shards");
  struct Opts {
    std::string sae, model, data, out;
    analysis::SaeEvalOptions e;
    int threads = 1;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--sae", o->sae, "SAE directory")->required();
  cmd->add_option("--model", o->model, "Model directory")->required();
  cmd->add_option("--data", o->data, "Token shards (val.bin of a directory, or a .bin file)")->required();
  cmd->add_option("--tokens", o->e.tokens, "Tokens to evaluate (whole windows)");
  cmd->add_option("--context", o->e.context, "Window length (0: the SAE's context_size)");
  cmd->add_option("--out", o->out, "Write the metrics as JSON here");
  cmd->add_option("--threads", o->threads, "Intra-op threads");
  cmd->callback([o]() {
    set_threads(o->threads);
    if (o->e.tokens < 1) fail("--tokens: must be >= 1 (zero tokens to evaluate)");
    const models::SparseAutoencoder sae = models::load_sae(o->sae);
    models::LoadedModel lm = models::load_model_dir(o->model);
    auto shard = std::make_shared<const data::TokenShard>(eval_shard(o->data));
    const analysis::SaeEvalResult r = analysis::evaluate_sae(lm.model, sae, shard, lm.vocab_map, o->e);
    const nlohmann::json j = {{"sae", o->sae},
                              {"hook_name", sae.cfg.hook_name},
                              {"tokens", r.tokens},
                              {"l0", r.l0},
                              {"explained_variance", r.explained_variance},
                              {"mse", r.mse},
                              {"cosine_similarity", r.cosine},
                              {"l2_ratio", r.l2_ratio},
                              {"ce_loss_clean", r.ce_clean},
                              {"ce_loss_with_sae", r.ce_sae},
                              {"ce_loss_with_ablation", r.ce_zero},
                              {"ce_loss_score", r.ce_loss_score},
                              {"kl_div_with_sae", r.kl_sae},
                              {"kl_div_with_ablation", r.kl_zero},
                              {"kl_div_score", r.kl_score},
                              {"frac_dead", r.frac_dead},
                              {"frac_dense_1pct", r.frac_dense_1pct},
                              {"frac_dense_10pct", r.frac_dense_10pct}};
    if (!o->out.empty()) write_file_atomic(o->out, j.dump(2) + "\n");
    for (auto it = j.begin(); it != j.end(); ++it) std::printf("%-22s %s\n", it.key().c_str(), it.value().dump().c_str());
  });
}

void register_features(CLI::App& sae) {
  auto* cmd = sae.add_subcommand("features", "Feature dashboards of every latent (features.json, analysis/SAE_FEATURES_JSON.md)");
  struct Opts {
    std::string sae, model, data, out, split = "train";
    analysis::SaeFeatureOptions f;
    int threads = 1;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--sae", o->sae, "SAE directory")->required();
  cmd->add_option("--model", o->model, "Model directory")->required();
  cmd->add_option("--data", o->data, "Token shards (a directory with train.bin/val.bin, or a .bin file)")->required();
  cmd->add_option("--out", o->out, "features.json to write")->required();
  cmd->add_option("--split", o->split, "train | val (when --data is a directory)");
  cmd->add_option("--tokens", o->f.tokens, "Positions to read (whole windows, evenly spaced over the shard)");
  cmd->add_option("--context", o->f.context, "Window length (0: the SAE's context_size)");
  cmd->add_option("--top", o->f.top, "Top activating examples per latent");
  cmd->add_option("--logit-tokens", o->f.logit_tokens, "Promoted and suppressed tokens per latent");
  cmd->add_option("--neighbors", o->f.neighbors, "Nearest latents by decoder cosine");
  cmd->add_option("--seed", o->f.seed, "Seed of the quantile examples' sampling");
  cmd->add_option("--threads", o->threads, "Intra-op threads");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->callback([o]() {
    set_threads(o->threads);
    if (o->f.tokens < 1) fail("--tokens: must be >= 1 (zero tokens to read)");
    if (o->f.top < 0 || o->f.logit_tokens < 0 || o->f.neighbors < 0) fail("--top, --logit-tokens, --neighbors: must be >= 0");
    if (o->split != "train" && o->split != "val") fail("--split: expected train or val, got '" + o->split + "'");
    std::string shard_path = o->data;
    if (is_directory(o->data)) {
      shard_path = o->data + "/" + o->split + ".bin";
      if (!file_exists(shard_path)) fail("--data " + o->data + ": no " + o->split + ".bin in it");
    } else if (!file_exists(o->data)) {
      fail("--data " + o->data + ": no such shard file or directory");
    }
    const auto t0 = std::chrono::steady_clock::now();
    const models::SparseAutoencoder sae = models::load_sae(o->sae);
    models::LoadedModel lm = models::load_model_dir(o->model);
    const data::TokenShard shard(shard_path);
    const data::Tokenizer tok = models::load_model_tokenizer(o->model);
    const data::TokenNamer namer(&tok, lm.vocab_map ? &*lm.vocab_map : nullptr);
    std::optional<ProgressBar> bar;
    if (!o->quiet) bar.emplace("features", 1.0, "win");
    auto progress = [&](int64_t done, int64_t total) {
      if (bar) bar->update(static_cast<double>(done) / static_cast<double>(total));
    };
    const analysis::SaeFeatures f = analysis::compute_sae_features(lm.model, sae, shard, lm.vocab_map, o->f, progress);
    if (bar) bar->finish();
    nlohmann::json j = analysis::sae_features_json(
        f, sae, lm.model->cfg(), lm.vocab_map.has_value(), o->f, namer,
        {{"sae_dir", o->sae}, {"model_dir", o->model}, {"data_dir", o->data}, {"split", o->split}});
    j["created_utc"] = analysis::now_utc();
    j["elapsed_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(o->out, j.dump() + "\n");
    const auto& sum = j.at("summary");
    std::printf("wrote %s: %lld latents x %lld tokens (%lld windows of %lld), %lld dead, mean L0 %.2f, %.1f s\n",
                o->out.c_str(), static_cast<long long>(sae.cfg.d_sae), static_cast<long long>(f.tokens),
                static_cast<long long>(f.windows), static_cast<long long>(f.context),
                static_cast<long long>(sum.at("dead").get<int64_t>()), sum.at("mean_l0").get<double>(),
                j.at("elapsed_s").get<double>());
  });
}

void register_synth(CLI::App& sae) {
  auto* cmd = sae.add_subcommand("synth", "Train an SAE on a known synthetic dictionary and score the recovery");
  struct Opts {
    train::SynthOptions s;
    train::SaeStepOptions step;
    std::string arch = "topk", out, json_out;
    int64_t d_sae = 1024, k = 2, steps = 3000, batch = 1024;
    uint64_t seed = 0;
    int threads = 1;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  o->step.lr = 2e-3;
  o->step.dead_tokens = 200000;
  cmd->add_option("--n-features", o->s.n_features, "True directions");
  cmd->add_option("--d", o->s.d, "Dimensions");
  cmd->add_option("--active", o->s.active, "Directions firing per vector");
  cmd->add_flag("--bernoulli", o->s.bernoulli, "Each direction fires independently (active on average)");
  cmd->add_option("--min-magnitude", o->s.min_magnitude, "Smallest firing magnitude");
  cmd->add_option("--max-magnitude", o->s.max_magnitude, "Largest firing magnitude");
  cmd->add_option("--group-size", o->s.group_size, "Correlated groups of this size");
  cmd->add_option("--group-p", o->s.group_p, "Probability a group-mate fires along");
  cmd->add_option("--data-seed", o->s.seed, "Seed of the dictionary and the samples");
  cmd->add_option("--arch", o->arch, "topk | batchtopk | jumprelu | relu");
  cmd->add_option("--d-sae", o->d_sae, "Latents");
  cmd->add_option("--k", o->k, "Active latents (TopK family)");
  cmd->add_option("--l1", o->step.l1_coefficient, "Sparsity coefficient (relu, jumprelu)");
  cmd->add_option("--lr", o->step.lr, "Adam learning rate");
  cmd->add_option("--steps", o->steps, "Training steps");
  cmd->add_option("--batch", o->batch, "Vectors per step");
  cmd->add_option("--seed", o->seed, "Seed of the SAE's initialisation");
  cmd->add_option("--threads", o->threads, "Intra-op threads");
  cmd->add_option("--out", o->out, "Save the trained SAE here (SAELens layout)");
  cmd->add_option("--json", o->json_out, "Write the report as JSON here");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->callback([o]() {
    set_threads(o->threads);
    models::SaeConfig c;
    c.architecture = models::parse_sae_architecture(o->arch, "--arch");
    c.d_in = o->s.d;
    c.d_sae = o->d_sae;
    c.k = (c.architecture == models::SaeArchitecture::TopK || c.architecture == models::SaeArchitecture::BatchTopK) ? o->k : 0;
    c.model_name = "synthetic";
    models::validate_sae_config(c, "sae synth");
    std::optional<ProgressBar> bar;
    if (!o->quiet) bar.emplace("synth", static_cast<double>(o->steps * o->batch), "vec");
    auto on_step = [&](int64_t s, const train::SaeStepStats& st) {
      if (!bar) return;
      char extra[120];
      std::snprintf(extra, sizeof extra, "L0 %.2f  EV %.3f", st.l0, st.explained_variance);
      bar->update(static_cast<double>(s * o->batch), extra);
    };
    models::SparseAutoencoder trained(c);
    const train::SynthReport r = train::run_synth(o->s, c, o->step, o->steps, o->batch, o->seed, on_step, &trained);
    if (bar) bar->finish();
    if (!o->out.empty()) models::save_sae(trained, o->out);
    const nlohmann::json j = {{"architecture", o->arch},
                              {"n_features", o->s.n_features},
                              {"d", o->s.d},
                              {"d_sae", o->d_sae},
                              {"k", c.k},
                              {"mcc", r.mcc},
                              {"recovered_fraction_cos_0_9", r.recovered_fraction},
                              {"explained_variance", r.explained_variance},
                              {"l0", r.l0},
                              {"dead_fraction", r.dead_fraction},
                              {"steps", r.steps},
                              {"seconds", r.seconds}};
    if (!o->json_out.empty()) write_file_atomic(o->json_out, j.dump(2) + "\n");
    for (auto it = j.begin(); it != j.end(); ++it) std::printf("%-28s %s\n", it.key().c_str(), it.value().dump().c_str());
  });
}

}  // namespace

void register_sae_commands(CLI::App& app) {
  auto* sae = app.add_subcommand("sae", "Sparse autoencoders: train, encode, eval, features, synth (SAELens layout)");
  sae->require_subcommand(1);
  register_train(*sae);
  register_encode(*sae);
  register_eval(*sae);
  register_features(*sae);
  register_synth(*sae);
}

}  // namespace circuitlab::apps
