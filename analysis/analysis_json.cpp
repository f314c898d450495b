// analysis.json sections from the steps' structs (see analysis_json.h; schema ANALYSIS_JSON.md).
#include "analysis/analysis_json.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/file_io.h"

namespace circuitlab::analysis {

using nlohmann::json;

namespace {

json opt_num(const std::optional<double>& x) { return x ? num(*x) : json(nullptr); }

json head_labels(const Thresholds& t, double prev, double ind, double dup, double pref, double copy, double first) {
  json l = json::array();
  if (prev >= t.prev_token) l.push_back("previous_token");
  if (ind >= t.induction) l.push_back("induction");
  if (dup >= t.duplicate) l.push_back("duplicate");
  if (pref >= t.prefix_matching) l.push_back("prefix_matching");
  if (copy >= t.copying) l.push_back("copying");
  if (first >= t.first_token) l.push_back("first_token");
  return l;
}

json pattern_json(const torch::Tensor& p) {  // [T, T] -> nested list rounded to 4 decimals
  torch::Tensor c = p.to(torch::kFloat64).contiguous();
  const int64_t T = c.size(0);
  const double* d = c.data_ptr<double>();
  json rows = json::array();
  for (int64_t i = 0; i < T; ++i) {
    json r = json::array();
    for (int64_t j = 0; j < T; ++j) r.push_back(std::round(d[i * T + j] * 1e4) / 1e4);
    rows.push_back(r);
  }
  return rows;
}

// [L][H][L][H] nested from a flattened score vector; minus: subtract the baseline mean where l1 < l2.
json nested_scores(const CompositionResult& c, const std::vector<double>& s, bool minus) {
  json a = json::array();
  for (int l1 = 0; l1 < c.L; ++l1) {
    json b1 = json::array();
    for (int h1 = 0; h1 < c.H; ++h1) {
      json c1 = json::array();
      for (int l2 = 0; l2 < c.L; ++l2) {
        json d1 = json::array();
        for (int h2 = 0; h2 < c.H; ++h2) {
          double v = s[c.scores.index(l1, h1, l2, h2)];
          if (minus && l1 < l2) v -= c.baseline.mean;
          d1.push_back(num(v));
        }
        c1.push_back(d1);
      }
      b1.push_back(c1);
    }
    a.push_back(b1);
  }
  return a;
}

std::string icl_note(const IclResult& r) {
  return r.pos.adjusted ? r.pos.note : std::string("positions 500 and 50 (0-based) as Olsson et al.");
}

json conventions_json(const AnalysisResult& r) {
  const auto& cfg = r.cfg;
  const HeadScoreOptions& ho = r.head_score_options;
  const int L = cfg.n_layers;
  return {
      {"ln_folding", r.folding_statement},
      {"biases", "biases excluded from weight-based circuits; included in every forward pass (head scores, ICL, term importance, bigram direct path with b_U)"},
      {"positions", cfg.shortformer() ? "shortformer: W_pos enters only Q/K inputs; token circuits exclude it"
                                      : "standard: W_pos is added to the residual stream; token circuits and the bigram direct path exclude it"},
      {"composition", "true Frobenius norm of the product (no cyclic shortcut); TransformerLens pairing; baseline = mean over random Gaussian low-rank pairs of the same shapes"},
      {"head_scores", "prev/current/first-token on " + (L > 0 ? r.head_scores.prev_token_input : std::string("-")) +
                          "; induction and duplicate on [BOS, r, r] (seq_len " + std::to_string(ho.induction_seq_len) +
                          ", batch " + std::to_string(ho.induction_batch) + ", queries in the second repeat); prefix matching and copying on [start] + " +
                          std::to_string(ho.prefix_len) + " distinct random tokens x " + std::to_string(ho.prefix_repeats) +
                          (r.pools_trimmed_by_counts ? " (5% most and least common ids excluded)" : " (no counts: all ids)") +
                          "; random ids from the model's own vocabulary without BOS and the compact 'other' id"},
      {"icl", r.have_data && r.icl ? icl_note(*r.icl) : std::string("no data")}};
}

}  // namespace

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_json_atomic(const std::string& path, const json& j) { write_file_atomic(path, j.dump(1) + "\n"); }

json thresholds_json(const Thresholds& t) {
  return {{"prev_token", t.prev_token}, {"induction", t.induction}, {"duplicate", t.duplicate},
          {"prefix_matching", t.prefix_matching}, {"copying", t.copying}, {"first_token", t.first_token}};
}

json heads_json(const std::vector<HeadPositivity>& pos, const HeadScores& hs, const Thresholds& t, int L, int H) {
  json heads = json::array();
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const int i = l * H + h;
      const auto& p = pos[i];
      json j;
      j["layer"] = l;
      j["head"] = h;
      j["ov_positivity"] = num(p.ov);
      j["ov_positivity_resid"] = num(p.ov_resid);
      j["qk_positivity"] = num(p.qk);
      j["kcomp_positivity"] = opt_num(p.kcomp);
      j["kcomp_source"] = p.kcomp ? json{{"layer", p.kcomp_src_layer}, {"head", p.kcomp_src_head}} : json(nullptr);
      j["kcomp_positivity_weighted"] = opt_num(p.kcomp_weighted);
      j["kcomp_trace_weighted"] = opt_num(p.kcomp_trace_weighted);
      j["prev_token_score"] = num(hs.prev_token[i]);
      j["current_token_score"] = num(hs.current_token[i]);
      j["first_token_score"] = num(hs.first_token[i]);
      j["duplicate_score"] = num(hs.duplicate[i]);
      j["induction_score"] = num(hs.induction[i]);
      j["prefix_matching_score"] = num(hs.prefix_matching[i]);
      j["copying_score"] = num(hs.copying[i]);
      j["ov_norm"] = num(p.ov_norm);
      j["qk_norm"] = num(p.qk_norm);
      j["labels"] = head_labels(t, hs.prev_token[i], hs.induction[i], hs.duplicate[i], hs.prefix_matching[i],
                                hs.copying[i], hs.first_token[i]);
      heads.push_back(j);
    }
  return heads;
}

json composition_json(const CompositionResult& c) {
  const CompositionBaseline& b = c.baseline;
  json comp;
  comp["q"] = nested_scores(c, c.scores.q, false);
  comp["k"] = nested_scores(c, c.scores.k, false);
  comp["v"] = nested_scores(c, c.scores.v, false);
  comp["q_minus_baseline"] = nested_scores(c, c.scores.q, true);
  comp["k_minus_baseline"] = nested_scores(c, c.scores.k, true);
  comp["v_minus_baseline"] = nested_scores(c, c.scores.v, true);
  comp["baseline"] = {{"random_mean", num(b.mean)}, {"random_std", num(b.std)}, {"n_samples", b.n_samples},
                      {"inv_sqrt_d_model", num(b.inv_sqrt_d_model)}};
  comp["pairing"] =
      "TransformerLens: q = |OV^{h1} QK^{h2}|, k = |OV^{h1} (QK^{h2})^T|, v = |OV^{h1} OV^{h2}|, each / "
      "(|left| |right|); true Frobenius norm of the product (erratum: no cyclic shortcut)";
  json top = json::array();
  for (const CompositionPair& p : c.top)
    top.push_back({{"kind", p.kind}, {"l1", p.l1}, {"h1", p.h1}, {"l2", p.l2}, {"h2", p.h2}, {"score", num(p.score)},
                   {"minus_baseline", num(p.score - b.mean)}, {"ratio_to_baseline", num(p.score / b.mean)}});
  comp["top_k"] = top;
  return comp;
}

json bigram_json(const BigramTable& bt, const data::TokenNamer& namer) {
  json bigram;
  bigram["source"] = bt.source;
  bigram["top_k"] = bt.top_k;
  bigram["n_rows"] = bt.rows.size();
  json rows = json::array();
  for (const auto& r : bt.rows) {
    json jr;
    jr["token"] = namer.json(r.token);
    jr["corpus_count"] = r.corpus_count ? json(*r.corpus_count) : json(nullptr);
    json mt = json::array();
    for (auto [id, lp] : r.model_top) mt.push_back({{"token", namer.json(id)}, {"logprob", num(lp)}});
    jr["model_top"] = mt;
    if (r.corpus_top) {
      json ct = json::array();
      for (auto [id, p] : *r.corpus_top) ct.push_back({{"token", namer.json(id)}, {"prob", num(p)}});
      jr["corpus_top"] = ct;
    } else {
      jr["corpus_top"] = nullptr;
    }
    rows.push_back(jr);
  }
  bigram["rows"] = rows;
  bigram["n_sources_compared"] = bt.n_sources_compared ? json(*bt.n_sources_compared) : json(nullptr);
  bigram["top1_agreement"] = opt_num(bt.top1_agreement);
  bigram["kl_corpus_model"] = opt_num(bt.kl_corpus_model);
  bigram["bigram_tokens_counted"] = bt.tokens_counted ? json(*bt.tokens_counted) : json(nullptr);
  return bigram;
}

namespace {

json skip_trigram_heads_json(const SkipTrigramResult& r, const data::TokenNamer& namer) {
  const size_t pairs = static_cast<size_t>(r.text_pairs);
  json jh = json::array();
  for (const auto& sh : r.heads) {
    json entries = json::array();
    for (const auto& e : sh.entries) {
      json d = json::array(), out = json::array(), text = json::array();
      for (auto [id, v] : e.destinations) d.push_back({{"token", namer.json(id)}, {"score", num(v)}});
      for (auto [id, v] : e.outputs) out.push_back({{"token", namer.json(id)}, {"logit", num(v)}});
      for (size_t a = 0; a < std::min(pairs, e.destinations.size()); ++a)
        for (size_t b = 0; b < std::min(pairs, e.outputs.size()); ++b)
          text.push_back(namer.str(e.source) + " … " + namer.str(e.destinations[a].first) + " → " +
                         namer.str(e.outputs[b].first));
      entries.push_back({{"source", namer.json(e.source)}, {"destinations", d}, {"outputs", out}, {"text", text}});
    }
    jh.push_back({{"layer", sh.layer}, {"head", sh.head}, {"entries", entries}});
  }
  return jh;
}

json skip_trigram_bugs_json(const std::vector<SkipTrigramBug>& bugs_in, const data::TokenNamer& namer) {
  json bugs = json::array();
  for (const auto& b : bugs_in) {
    json crossed = json::array();
    std::string txt;
    for (const auto& c : b.crossed) {
      crossed.push_back({{"destination", namer.json(c.dest)}, {"out", namer.json(c.out)}, {"corpus_prob", num(c.prob)},
                         {"boost", num(c.boost)}});
      if (txt.empty()) txt = namer.str(b.source) + " … " + namer.str(c.dest) + " → " + namer.str(c.out);
    }
    bugs.push_back({{"layer", b.layer}, {"head", b.head}, {"source", namer.json(b.source)},
                    {"a", {{"destination", namer.json(b.dest_a)}, {"out", namer.json(b.out_a)}, {"corpus_prob", num(b.prob_a)}}},
                    {"b", {{"destination", namer.json(b.dest_b)}, {"out", namer.json(b.out_b)}, {"corpus_prob", num(b.prob_b)}}},
                    {"crossed", crossed}, {"text", txt}});
  }
  return bugs;
}

}  // namespace

json skip_trigrams_json(const SkipTrigramResult& r, const data::TokenNamer& namer) {
  json skip;
  skip["n_sources"] = r.sources.size();
  skip["top_k"] = r.top_k;
  skip["heads"] = skip_trigram_heads_json(r, namer);
  skip["bugs"] = r.bugs ? skip_trigram_bugs_json(*r.bugs, namer) : json(nullptr);
  return skip;
}

json icl_json(const IclResult& r) {
  json icl = {{"early_pos", r.pos.early}, {"late_pos", r.pos.late}, {"adjusted", r.pos.adjusted},
              {"note", icl_note(r)},
              {"loss_early", num(r.loss_early)}, {"loss_late", num(r.loss_late)}, {"icl_score", num(r.icl_score)},
              {"n_windows", r.n_windows}, {"window_len", r.window_len}};
  json curve = json::array();
  for (double v : r.loss_by_position) curve.push_back(num(v));
  icl["loss_by_position"] = curve;
  return icl;
}

json term_importance_json(const TermImportanceResult& r) {
  const TermImportance& t = r.t;
  json ti = {{"n_tokens", t.n_tokens}, {"window_len", t.window_len}, {"uniform_loss", num(t.uniform_loss)},
             {"full_loss", num(t.full_loss)}};
  json orders = json::array();
  for (const auto& od : t.orders)
    orders.push_back({{"order", od.order}, {"label", od.label}, {"loss", num(od.loss)}, {"marginal_nats", num(od.marginal_nats)}});
  ti["orders"] = orders;
  json ph = json::array();
  if (r.per_head_ok)
    for (const auto& a : t.per_head)
      ph.push_back({{"layer", a.layer}, {"head", a.head}, {"loss_delta", num(a.loss_delta)}, {"icl_delta", opt_num(a.icl_delta)}});
  ti["per_head"] = ph;
  ti["per_head_note"] = r.per_head_ok ? json(nullptr)
                                      : json("per-head ablations skipped: " + std::to_string(r.n_heads) + " heads > --per-head-max " +
                                             std::to_string(r.per_head_max));
  return ti;
}

json attention_samples_json(const std::vector<AttentionSample>& samples, const data::TokenNamer& namer) {
  json out = json::array();
  for (const AttentionSample& s : samples) {
    json tj = json::array();
    for (int64_t i = 0; i < s.tokens.size(1); ++i) tj.push_back(namer.json(s.tokens[0][i].item<int64_t>()));
    json hj = json::array();
    for (size_t k = 0; k < s.heads.size(); ++k)
      hj.push_back({{"layer", s.heads[k].first}, {"head", s.heads[k].second}, {"pattern", pattern_json(s.patterns[k])}});
    out.push_back({{"name", s.name}, {"tokens", tj}, {"heads", hj}});
  }
  return out;
}

json analysis_json(const AnalysisResult& r, const AnalyzeOptions& o, const data::TokenNamer& namer) {
  const auto& cfg = r.cfg;
  json timings = json::object();
  for (const auto& [step, s] : r.timings_s) timings[step] = s;
  json j;
  j["format"] = "circuitlab-analysis-v1";
  j["model_dir"] = o.model_dir;
  j["data_dir"] = r.have_data ? json(o.data_dir) : json(nullptr);
  j["created_utc"] = now_utc();
  j["elapsed_s"] = num(r.elapsed_s);
  j["timings_s"] = timings;
  j["threads"] = at::get_num_threads();
  j["seed"] = o.seed;
  json c = models::to_json(cfg);
  c["family"] = models::to_string(cfg.family);
  j["config"] = c;
  j["n_params"] = r.n_params;
  const OvCopyingCorrelation ovc = ov_copying_correlation(r.positivity);
  j["ov_copying_correlation"] = {{"pearson_r", num(ovc.pearson_r)}, {"heads", ovc.heads}};
  j["vocab"] = {{"compact", r.compact_vocab}, {"d_vocab", cfg.d_vocab},
                {"bos", r.bos ? namer.json(*r.bos) : json(nullptr)},
                {"other", r.other ? namer.json(*r.other) : json(nullptr)}};
  j["conventions"] = conventions_json(r);
  j["thresholds"] = thresholds_json(o.thresholds);
  j["heads"] = heads_json(r.positivity, r.head_scores, o.thresholds, cfg.n_layers, cfg.n_heads);
  j["composition"] = r.composition ? composition_json(*r.composition) : json(nullptr);
  j["bigram"] = bigram_json(r.bigram, namer);
  j["skip_trigrams"] = r.skip_trigrams ? skip_trigrams_json(*r.skip_trigrams, namer) : json(nullptr);
  j["term_importance"] = r.term_importance ? term_importance_json(*r.term_importance) : json(nullptr);
  j["icl"] = r.icl ? icl_json(*r.icl) : json(nullptr);
  j["attention_samples"] = attention_samples_json(r.samples, namer);
  return j;
}

json phase_change_json(const PhaseChangeResult& r, const AnalyzeOptions& o) {
  auto best_json = [](const std::optional<BestHead>& b) {
    return b ? json{{"layer", b->layer}, {"head", b->head}, {"score", num(b->score)}} : json(nullptr);
  };
  json list = json::array();
  for (const SnapshotScores& s : r.snapshots) {
    json js;
    js["step"] = s.step;
    js["tokens"] = s.tokens ? json(*s.tokens) : json(nullptr);
    json hj = json::array();
    const HeadScores& hs = s.head_scores;
    for (int i = 0; i < s.L * s.H; ++i)
      hj.push_back({{"layer", i / s.H}, {"head", i % s.H}, {"prev_token_score", num(hs.prev_token[i])},
                    {"induction_score", num(hs.induction[i])}, {"duplicate_score", num(hs.duplicate[i])},
                    {"prefix_matching_score", num(hs.prefix_matching[i])}, {"first_token_score", num(hs.first_token[i])}});
    js["heads"] = hj;
    js["best_induction"] = best_json(s.best_induction);
    js["best_prev_token"] = best_json(s.best_prev_token);
    js["icl"] = s.icl ? json{{"icl_score", num(s.icl->icl_score)}, {"loss_early", num(s.icl->loss_early)},
                             {"loss_late", num(s.icl->loss_late)}, {"early_pos", s.icl->pos.early},
                             {"late_pos", s.icl->pos.late}}
                      : json(nullptr);
    list.push_back(js);
  }
  json phase = {{"threshold", o.thresholds.induction}, {"step", nullptr}, {"tokens", nullptr}, {"layer", nullptr}, {"head", nullptr}};
  if (r.first) {
    const SnapshotScores& s = r.snapshots[*r.first];
    phase["step"] = s.step;
    phase["tokens"] = s.tokens ? json(*s.tokens) : json(nullptr);
    phase["layer"] = s.best_induction->layer;
    phase["head"] = s.best_induction->head;
  }
  json out;
  out["format"] = "circuitlab-phase-change-v1";
  out["run_dir"] = r.run_dir;
  out["data_dir"] = r.data_dir.empty() ? json(nullptr) : json(r.data_dir);
  out["created_utc"] = now_utc();
  out["thresholds"] = thresholds_json(o.thresholds);
  out["snapshots"] = list;
  out["phase_change"] = phase;
  return out;
}

}  // namespace circuitlab::analysis
