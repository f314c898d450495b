// Schema checks of the report's inputs (see analysis_schema.h; the schema is
// analysis/ANALYSIS_JSON.md). The walker, `Node`, is in schema_node.h.
#include "reports/analysis_schema.h"

#include "core/error.h"
#include "core/json_fields.h"
#include "reports/schema_node.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;
using schema::kNotNull;
using schema::kNullable;
using schema::Node;

void check_head(const Node& h) {
  h.require("layer");
  h.require("head");
  h.integer("layer");
  h.integer("head");
  for (const char* k : {"ov_positivity", "ov_positivity_resid", "qk_positivity", "kcomp_positivity",
                        "kcomp_positivity_weighted", "kcomp_trace_weighted", "prev_token_score", "current_token_score",
                        "first_token_score", "duplicate_score", "induction_score", "prefix_matching_score",
                        "copying_score", "ov_norm", "qk_norm"})
    h.number(k);
  h.child("kcomp_source", [](const Node& s) {
    s.integer("layer");
    s.integer("head");
  });
  h.strings("labels");
}

void check_composition(const Node& c) {
  for (const char* k : {"q", "k", "v", "q_minus_baseline", "k_minus_baseline", "v_minus_baseline"}) c.number_array(k, 4);
  c.child("baseline", [](const Node& b) {
    b.number("random_mean");
    b.number("random_std");
    b.integer("n_samples", kNullable);
    b.number("inv_sqrt_d_model");
  });
  c.string("pairing", kNullable);
  c.objects("top_k", [](const Node& t) {
    t.string("kind");
    for (const char* k : {"l1", "h1", "l2", "h2"}) t.integer(k);
    for (const char* k : {"score", "minus_baseline", "ratio_to_baseline"}) t.number(k);
  });
}

void check_bigram(const Node& b) {
  b.string("source", kNullable);
  b.integer("top_k", kNullable);
  b.objects("rows", [](const Node& r) {
    r.token("token");
    r.integer("corpus_count", kNullable);
    r.objects("model_top", [](const Node& t) {
      t.token("token");
      t.number("logprob");
    });
    r.objects("corpus_top", [](const Node& t) {
      t.token("token");
      t.number("prob");
    });
  });
  for (const char* k : {"n_rows", "n_sources_compared", "bigram_tokens_counted"}) b.integer(k, kNullable);
  b.number("top1_agreement");
  b.number("kl_corpus_model");
}

void check_trigram_pair(const Node& p) {
  p.token("destination");
  p.token("out");
  p.number("corpus_prob");
  p.number("boost");
}

void check_skip_trigrams(const Node& s) {
  s.integer("n_sources", kNullable);
  s.integer("top_k", kNullable);
  s.objects("heads", [](const Node& h) {
    h.integer("layer");
    h.integer("head");
    h.objects("entries", [](const Node& e) {
      e.token("source");
      e.objects("destinations", [](const Node& d) {
        d.token("token");
        d.number("score");
      });
      e.objects("outputs", [](const Node& o) {
        o.token("token");
        o.number("logit");
      });
      e.strings("text");
    });
  });
  s.objects("bugs", [](const Node& b) {
    b.integer("layer");
    b.integer("head");
    b.token("source");
    b.child("a", check_trigram_pair);
    b.child("b", check_trigram_pair);
    b.objects("crossed", check_trigram_pair);
    b.string("text", kNullable);
  });
}

void check_term_importance(const Node& t) {
  t.integer("n_tokens", kNullable);
  t.integer("window_len", kNullable);
  t.number("uniform_loss");
  t.number("full_loss");
  t.objects("orders", [](const Node& o) {
    o.integer("order");
    o.string("label", kNullable);
    o.number("loss");
    o.number("marginal_nats");
  });
  t.objects("per_head", [](const Node& p) {
    p.integer("layer");
    p.integer("head");
    p.number("loss_delta");
    p.number("icl_delta");
  });
  t.string("per_head_note", kNullable);
}

void check_icl(const Node& i) {
  for (const char* k : {"early_pos", "late_pos", "n_windows", "window_len"}) i.integer(k, kNullable);
  i.boolean("adjusted");
  i.string("note", kNullable);
  for (const char* k : {"loss_early", "loss_late", "icl_score"}) i.number(k);
  i.number_array("loss_by_position", 1);
}

void check_sample(const Node& s) {
  s.string("name", kNullable);
  s.token_array("tokens");
  s.objects("heads", [](const Node& h) {
    h.integer("layer");
    h.integer("head");
    h.number_array("pattern", 2);
  });
}

}  // namespace

void check_analysis_json(const json& a, const std::string& path) {
  Node top(a, path, "");
  top.require("format");
  top.string("format");
  if (a["format"] != "circuitlab-analysis-v1")
    json_fields::field_error(path, "format", "must be \"circuitlab-analysis-v1\", got " + a["format"].dump());
  top.require("config");
  top.require("heads");
  top.string("model_dir", kNullable);
  top.string("data_dir", kNullable);
  top.string("created_utc", kNullable);
  top.number("elapsed_s");
  top.numbers("timings_s");
  top.integer("threads", kNullable);
  top.integer("seed", kNullable);
  top.child("config", [](const Node& c) {
    for (const char* k : {"n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab", "d_vocab_out"}) c.integer(k, kNullable);
    c.string("family", kNullable);
  }, kNotNull);
  top.integer("n_params", kNullable);
  top.child("ov_copying_correlation", [](const Node& c) {
    c.number("pearson_r");
    c.integer("heads", kNullable);
  });
  top.child("vocab", [](const Node& v) {
    v.boolean("compact");
    v.integer("d_vocab", kNullable);
    v.token("bos", kNullable);
    v.token("other", kNullable);
  });
  top.strings("conventions");
  top.numbers("thresholds");
  top.objects("heads", check_head, kNotNull);
  top.child("composition", check_composition);
  top.child("bigram", check_bigram);
  top.child("skip_trigrams", check_skip_trigrams);
  top.child("term_importance", check_term_importance);
  top.child("icl", check_icl);
  top.objects("attention_samples", check_sample);
}

void check_phase_change_json(const json& p, const std::string& path) {
  Node top(p, path, "");
  top.string("format", kNullable);
  top.string("run_dir", kNullable);
  top.string("data_dir", kNullable);
  top.numbers("thresholds");
  auto best = [](const Node& b) {
    b.integer("layer", kNullable);
    b.integer("head", kNullable);
    b.number("score");
  };
  top.objects("snapshots", [&](const Node& s) {
    s.require("step");
    s.integer("step");
    s.integer("tokens", kNullable);
    s.objects("heads", [](const Node& h) {
      h.integer("layer");
      h.integer("head");
      for (const char* k : {"prev_token_score", "induction_score", "duplicate_score", "prefix_matching_score",
                            "first_token_score"})
        h.number(k);
    });
    s.child("best_induction", best);
    s.child("best_prev_token", best);
    s.child("icl", [](const Node& i) {
      for (const char* k : {"icl_score", "loss_early", "loss_late"}) i.number(k);
      i.integer("early_pos", kNullable);
      i.integer("late_pos", kNullable);
    });
  });
  top.child("phase_change", [](const Node& c) {
    c.number("threshold");
    for (const char* k : {"step", "tokens", "layer", "head"}) c.integer(k, kNullable);
  });
}

void check_metrics_row(const json& row, const std::string& where) {
  Node r(row, where, "");
  r.integer("step", kNullable);
  for (const char* k : {"tokens", "train_loss", "val_loss", "elapsed_s", "lr", "icl_score"}) r.number(k);
}

}  // namespace circuitlab::reports
