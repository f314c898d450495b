// Training run configuration: a preset (configs/<name>.json) resolved with command-line
// overrides into one struct, written to runs/<name>/train_config.json. Not the trainer
// (trainer.h) and free of LibTorch: the model part is a models::ModelConfig.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/config.h"

namespace circuitlab::train {

struct TrainConfig {
  std::string name = "run";
  models::ModelConfig model;  // model.d_vocab < 50257: compact vocabulary of that size

  // Data: `batch_size` sequences of model.n_ctx tokens per optimizer step (global: split over
  // data-parallel ranks and gradient-accumulation micro-steps).
  int64_t batch_size = 32;
  int grad_accum = 1;
  uint64_t seed = 0;  // model init and data order
  // Span repetition (documented preset option, off by default): with this probability a
  // training window gets a copy of one of its own natural-text spans later in the window, so
  // in-context repetition (what induction heads exploit) is frequent. Spans are
  // [span_repeat_min_len, n_ctx/2] tokens. Deterministic per (seed, global window index).
  double span_repeat_prob = 0.0;
  int span_repeat_min_len = 8;
  // Adjacent (the copy directly follows its source, as in [BOS, r, r] probes) or anywhere
  // later in the window.
  bool span_repeat_adjacent = false;
  // W_pos init std when > 0 (shortformer positions learn faster from a larger init); -1: the
  // model's initializer_range like every other W_*.
  double pos_init_std = -1;

  // Optimiser: AdamW, linear warmup then cosine decay to min_lr, gradient clipping.
  int64_t steps = 1000;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t warmup_steps = 100;
  double weight_decay = 0.0;      // on W_Q/W_K/W_V/W_O/W_U/W_in/W_out only
  bool decay_embeddings = false;  // also decay W_E and W_pos
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;  // max global L2 norm; <= 0: off

  // Bookkeeping.
  int64_t log_every = 10;
  int64_t eval_every = 100;
  int64_t eval_windows = 64;  // val windows of n_ctx tokens per evaluation
  int64_t checkpoint_every = 250;
  int keep_checkpoints = 3;
  int snapshots = 16;  // model dirs at log-spaced steps (plus step 0); 0: none

  // The field list: reading (unknown keys are an Error), writing, range checks and equality.
  // `v(key, field, min, max)`; bounds are inclusive and checked by validate(); the "model"
  // section is visited by `v.model(key, field)`.
  template <class Self, class V>
  static void visit_fields(Self& c, V&& v) {
    constexpr double kInf = std::numeric_limits<double>::infinity();
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    v("name", c.name);
    v.model("model", c.model);
    v("batch_size", c.batch_size, int64_t{1}, kMax);
    v("grad_accum", c.grad_accum, int64_t{1}, kMax);
    v("seed", c.seed);
    v("span_repeat_prob", c.span_repeat_prob, 0.0, 1.0);
    v("span_repeat_min_len", c.span_repeat_min_len);
    v("span_repeat_adjacent", c.span_repeat_adjacent);
    v("pos_init_std", c.pos_init_std);
    v("steps", c.steps, int64_t{1}, kMax);
    v("lr", c.lr);
    v("min_lr", c.min_lr);
    v("warmup_steps", c.warmup_steps, int64_t{0}, kMax);
    v("weight_decay", c.weight_decay, 0.0, kInf);
    v("decay_embeddings", c.decay_embeddings);
    v("beta1", c.beta1);
    v("beta2", c.beta2);
    v("adam_eps", c.adam_eps);
    v("grad_clip", c.grad_clip);
    v("log_every", c.log_every, int64_t{1}, kMax);
    v("eval_every", c.eval_every, int64_t{0}, kMax);
    v("eval_windows", c.eval_windows, int64_t{1}, kMax);
    v("checkpoint_every", c.checkpoint_every, int64_t{0}, kMax);
    v("keep_checkpoints", c.keep_checkpoints, int64_t{1}, kMax);
    v("snapshots", c.snapshots, int64_t{0}, kMax);
  }

  // Error naming `where` and the field when a value is out of range.
  void validate(const std::string& where) const;
  int64_t tokens_per_step() const { return batch_size * model.n_ctx; }
};

// Every field of the list equal (the model's too).
bool operator==(const TrainConfig& a, const TrainConfig& b);
inline bool operator!=(const TrainConfig& a, const TrainConfig& b) { return !(a == b); }

nlohmann::json to_json(const TrainConfig& c);
// Unknown keys are an Error (a typo in a preset must not be silently ignored); "description"
// is the one documentation key a preset may carry.
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& where);

// Applies "key=value" overrides to a preset's JSON: dotted keys reach into "model"
// (model.d_model=64); the value is parsed as JSON when it parses, else taken as a string.
void apply_overrides(nlohmann::json& j, const std::vector<std::string>& overrides);

// configs/<name>.json, looked up in $CIRCUITLAB_CONFIGS, ./configs, then the source tree's
// configs/ (a path ending in .json is read as is). Error listing the places tried.
std::string find_preset(const std::string& name_or_path);
nlohmann::json load_preset_json(const std::string& name_or_path);

// Steps at which weight snapshots are taken: 0 plus `count` log-spaced steps up to `steps`.
std::vector<int64_t> snapshot_steps(int64_t steps, int count);

}  // namespace circuitlab::train
