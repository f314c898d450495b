// `circuitlab probe train`: linear probes (analysis/probe.h) at one hook point or one per layer,
// written as probe.safetensors + probe.json per hook and a one-screen table. Thin: data and
// labels to features, analysis::train_probe per hook; nothing is written before every probe trained.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "analysis/analyze.h"
#include "analysis/probe.h"
#include "apps/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "models/model_dir.h"
#include "models/safetensors.h"

namespace circuitlab::apps {

namespace {

struct ProbeCmdOpts {
  std::string model, hook, data, label, token, position = "last", out;
  analysis::ProbeOptions p;
  int64_t windows = 64;
  int threads = 0;
};

// The shard a token-derived label reads: <dir>/train.bin (else val.bin), or the file itself.
std::string probe_shard(const std::string& data) {
  if (is_directory(data)) {
    for (const char* f : {"/train.bin", "/val.bin"})
      if (file_exists(data + f)) return data + f;
    fail("--data " + data + ": no train.bin or val.bin in it");
  }
  if (!file_exists(data)) fail("--data " + data + ": no such shard file or directory");
  return data;
}

int64_t model_token(const std::string& s, const models::LoadedModel& lm, const std::string& dir) {
  if (s.empty()) fail("--label next-is needs --token STR (one token)");
  const auto ids = models::load_model_tokenizer(dir).encode(s);
  if (ids.size() != 1) fail("--token '" + s + "' is " + std::to_string(ids.size()) + " tokens, expected exactly one");
  if (lm.vocab_map) {
    const int32_t c = lm.vocab_map->to_compact(ids[0]);
    if (c == lm.vocab_map->other_id()) fail("--token '" + s + "' is outside the model's compact vocabulary");
    return c;
  }
  if (ids[0] >= lm.model->cfg().d_vocab) fail("--token '" + s + "' is outside the model's vocabulary");
  return ids[0];
}

std::vector<analysis::ProbeData> load_rows(const ProbeCmdOpts& o, models::LoadedModel& lm,
                                           const std::vector<std::string>& hooks, std::string* pos_used) {
  if (!o.label.empty()) {
    *pos_used = "all";
    const int64_t tok = o.label == "next-is" ? model_token(o.token, lm, o.model) : -1;
    if (o.label != "repeat" && o.label != "next-is") fail("--label: unknown kind '" + o.label + "' (expected repeat or next-is)");
    const data::TokenShard shard(probe_shard(o.data));
    return analysis::token_features(lm.model, shard, lm.vocab_map, o.label, tok, o.windows, hooks);
  }
  const analysis::ProbePosition pos = analysis::parse_probe_position(o.position);
  *pos_used = o.position;
  const analysis::LabeledTexts lt = analysis::read_probe_jsonl(o.data);
  if (lt.classes.size() < 2) fail(o.data + ": every label is '" + lt.classes[0] + "'; a probe needs at least two classes");
  const data::Tokenizer tok = models::load_model_tokenizer(o.model);
  std::vector<std::vector<int64_t>> ids;
  for (const auto& t : lt.texts) {
    std::vector<int64_t> v{lm.vocab_map ? lm.vocab_map->to_compact(models::kGpt2Bos) : models::kGpt2Bos};
    if (!lm.vocab_map && lm.model->cfg().d_vocab <= models::kGpt2Bos) v.clear();
    for (int32_t g : tok.encode(t)) v.push_back(lm.vocab_map ? lm.vocab_map->to_compact(g) : g);
    if (v.empty()) fail(o.data + ": a text tokenises to nothing");
    if (static_cast<int64_t>(v.size()) > lm.model->cfg().n_ctx) v.resize(lm.model->cfg().n_ctx);
    ids.push_back(std::move(v));
  }
  return analysis::text_features(lm.model, ids, lt, hooks, pos);
}

nlohmann::json probe_json(const ProbeCmdOpts& o, const std::string& hook, const std::string& pos,
                          const analysis::ProbeData& d, const analysis::ProbeResult& r) {
  nlohmann::json balance = nlohmann::json::object();
  for (size_t c = 0; c < d.classes.size(); ++c)
    balance[d.classes[c]] = {{"all", r.counts[c]}, {"train", r.train_counts[c]}, {"test", r.test_counts[c]}};
  return {{"format", "circuitlab-probe-v1"}, {"model", o.model}, {"hook", hook},
          {"labels", o.label.empty() ? "file:" + o.data : o.label + (o.label == "next-is" ? ":" + o.token : "")},
          {"classes", d.classes}, {"d", d.X.size(1)}, {"n_train", r.n_train}, {"n_test", r.n_test},
          {"train_accuracy", r.train_acc}, {"test_accuracy", r.test_acc},
          {"baselines", {{"majority", r.majority_acc}, {"random_direction", r.random_acc},
                         {"random_direction_is", "a fixed random unit direction in standardised space, per-class scale and bias fitted"}}},
          {"balance", balance}, {"has_direction", r.direction.defined()},
          {"options", {{"position", pos}, {"l2", o.p.l2}, {"epochs", o.p.epochs}, {"seed", o.p.seed},
                       {"holdout", o.p.holdout}, {"windows", o.windows}, {"data", o.data}}},
          {"logits", "((x - mean) / std) . W + b; W [d, C], b [C]"}};
}

void write_probe(const std::string& dir, const nlohmann::json& j, const analysis::ProbeResult& r) {
  make_dirs(dir);
  std::map<std::string, torch::Tensor> t{{"W", r.W}, {"b", r.b}, {"mean", r.mean}, {"std", r.std}};
  if (r.direction.defined()) t["direction"] = r.direction;
  models::save_safetensors(dir + "/probe.safetensors", t, {{"format", "circuitlab-probe-v1"}});
  analysis::write_json_atomic(dir + "/probe.json", j);
}

void run_probe_train(const ProbeCmdOpts& o) {
  set_threads(o.threads);
  models::LoadedModel lm = models::load_model_dir(o.model);
  const std::vector<std::string> hooks = analysis::expand_probe_hooks(lm.model, o.hook);
  std::string pos;
  const std::vector<analysis::ProbeData> rows = load_rows(o, lm, hooks, &pos);
  std::vector<analysis::ProbeResult> res;
  for (const auto& d : rows) res.push_back(analysis::train_probe(d, o.p));
  const auto& d0 = rows[0];
  std::printf("probe: %s, labels %s, position %s, %lld rows (%lld train / %lld held out), d %lld\n", o.model.c_str(),
              o.label.empty() ? o.data.c_str() : o.label.c_str(), pos.c_str(), static_cast<long long>(d0.X.size(0)),
              static_cast<long long>(res[0].n_train), static_cast<long long>(res[0].n_test), static_cast<long long>(d0.X.size(1)));
  std::printf("class balance:");
  for (size_t c = 0; c < d0.classes.size(); ++c)
    std::printf("  '%s' %lld (%.1f%%)", d0.classes[c].c_str(), static_cast<long long>(res[0].counts[c]),
                100.0 * res[0].counts[c] / static_cast<double>(d0.X.size(0)));
  std::printf("\n  %-32s %9s %9s %9s %9s\n", "hook", "train", "held-out", "majority", "random-dir");
  for (size_t h = 0; h < hooks.size(); ++h)
    std::printf("  %-32s %9.4f %9.4f %9.4f %9.4f\n", hooks[h].c_str(), res[h].train_acc, res[h].test_acc,
                res[h].majority_acc, res[h].random_acc);
  std::printf("random-dir: a fixed random unit direction (standardised space) with a fitted scale and bias\n");
  for (size_t h = 0; h < hooks.size(); ++h) {
    const std::string dir = hooks.size() == 1 ? o.out : o.out + "/" + hooks[h];
    write_probe(dir, probe_json(o, hooks[h], pos, rows[h], res[h]), res[h]);
    std::printf("wrote %s/probe.{safetensors,json}\n", dir.c_str());
  }
}

}  // namespace

void register_probe_commands(CLI::App& app) {
  CLI::App* probe = app.add_subcommand("probe", "Linear probes on a model's activations at hook points");
  probe->require_subcommand(1);
  auto o = std::make_shared<ProbeCmdOpts>();
  CLI::App* cmd = probe->add_subcommand(
      "train", "Train a logistic-regression probe (softmax for multi-class) per hook; held-out accuracy vs "
               "majority-class and random-direction baselines");
  cmd->add_option("--model", o->model, "Model dir")->required();
  cmd->add_option("--hook", o->hook, "Hook point, or a kind across layers: resid_post, blocks.*.hook_resid_post")->required();
  cmd->add_option("--data", o->data, "JSONL of {\"text\", \"label\"}; with --label: token shards (dir or .bin)")->required();
  cmd->add_option("--label", o->label, "Token-derived labels instead of a file's: repeat | next-is");
  cmd->add_option("--token", o->token, "For --label next-is: the one-token string X");
  cmd->add_option("--position", o->position, "last | mean | all (JSONL data; token labels use all)");
  cmd->add_option("--out", o->out, "Output dir (probe.safetensors + probe.json; one subdir per hook for a pattern)")->required();
  cmd->add_option("--l2", o->p.l2, "L2 weight on W")->check(CLI::NonNegativeNumber);
  cmd->add_option("--epochs", o->p.epochs, "LBFGS steps (20 iterations each)")->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", o->p.seed, "Seed of the held-out split and the random direction");
  cmd->add_option("--holdout", o->p.holdout, "Fraction of texts/windows held out")->check(CLI::Range(0.01, 0.99));
  cmd->add_option("--windows", o->windows, "Token labels: windows of n_ctx read from the shard")->check(CLI::Range(2, 1000000));
  cmd->add_option("--threads", o->threads, "Intra-op threads (0: keep the default)");
  cmd->callback([o]() { run_probe_train(*o); });
}

}  // namespace circuitlab::apps
