// analysis.json: loads the model dir and the data, runs every analysis, names every token.
#include "analysis/analyze.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "analysis/bigram.h"
#include "analysis/circuit_weights.h"
#include "analysis/composition.h"
#include "analysis/eigen_positivity.h"
#include "analysis/head_scores.h"
#include "analysis/icl.h"
#include "analysis/skip_trigrams.h"
#include "analysis/term_importance.h"
#include "data/batches.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "data/shards.h"
#include "data/token_namer.h"
#include "data/tokenizer.h"
#include "models/model_dir.h"

namespace circuitlab::analysis {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }
json opt_num(const std::optional<double>& x) { return x ? num(*x) : json(nullptr); }

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double lap() {
    auto t = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(t - t0).count();
    t0 = t;
    return s;
  }
};

// Model-id counts: token_counts.json next to train.bin (GPT-2 ids), else counted from train.bin.
std::vector<uint64_t> model_counts(const std::string& data_dir, const std::optional<data::VocabMap>& vmap, int d_vocab) {
  std::vector<uint64_t> g;
  const std::string tc = data_dir + "/token_counts.json";
  if (file_exists(tc)) {
    g = data::load_token_counts(tc);
  } else {
    data::TokenShard shard(data_dir + "/train.bin");
    g = data::count_tokens(shard);
  }
  std::vector<uint64_t> m(d_vocab, 0);
  for (size_t id = 0; id < g.size(); ++id) {
    int64_t c = vmap ? vmap->to_compact(static_cast<int32_t>(id)) : static_cast<int64_t>(id);
    if (c < d_vocab) m[c] += g[id];
  }
  return m;
}

void load_windows(const std::string& data_dir, const std::optional<data::VocabMap>& vmap, int T, int n,
                  std::vector<torch::Tensor>& xs, std::vector<torch::Tensor>& ys) {
  auto shard = std::make_shared<const data::TokenShard>(data_dir + "/val.bin");
  if (shard->size() < static_cast<size_t>(T) + 1)
    fail(data_dir + "/val.bin: holds " + std::to_string(shard->size()) + " tokens, fewer than one window of " +
         std::to_string(T + 1));
  data::EvalWindows ew(shard, 8, T, n, vmap);
  torch::Tensor x, y;
  while (ew.next(x, y)) {
    xs.push_back(x);
    ys.push_back(y);
  }
}

torch::Dtype big_dtype(const AnalyzeOptions& o, const models::ModelConfig& c) {
  if (o.precision == "double") return torch::kFloat64;
  if (o.precision == "float") return torch::kFloat32;
  if (o.precision != "auto") fail("--precision: expected double, float or auto, got '" + o.precision + "'");
  return double(c.d_vocab) * c.d_model * c.d_model > 2e9 ? torch::kFloat32 : torch::kFloat64;
}

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

json thresholds_json(const Thresholds& t) {
  return {{"prev_token", t.prev_token}, {"induction", t.induction}, {"duplicate", t.duplicate},
          {"prefix_matching", t.prefix_matching}, {"copying", t.copying}, {"first_token", t.first_token}};
}

json pattern_json(const torch::Tensor& p) {  // [T, T] -> rounded nested list
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

}  // namespace

void write_json_atomic(const std::string& path, const json& j) { write_file_atomic(path, j.dump(1) + "\n"); }

json analyze_model(const AnalyzeOptions& o) {
  torch::NoGradGuard ng;
  Timer total, lap;
  json timings = json::object();
  models::LoadedModel lm = models::load_model_dir(o.model_dir);
  models::HookedTransformer model = lm.model;
  model->eval();
  const models::ModelConfig& cfg = model->cfg();
  const auto& vmap = lm.vocab_map;
  const bool have_data = !o.data_dir.empty();
  // Token objects {"id", "gpt2_id", "str"} (ANALYSIS_JSON.md), named by the namer the lab shares.
  const auto namer = data::TokenNamer::with_default_tokenizer(vmap ? &*vmap : nullptr);
  auto name = [&namer](int64_t id) { return namer.json(id); };
  const int L = cfg.n_layers, H = cfg.n_heads;
  const bool per_head_ok = L * H <= o.per_head_max;

  // Steps: weights, positivity, composition, head scores, bigram, skip-trigrams, term importance/ICL, samples
  ProgressBar bar("analyze " + o.model_dir, 8, "step");
  int step = 0;
  auto done = [&](const std::string& what) {
    timings[what] = lap.lap();
    if (o.progress) bar.update(++step, what);
  };

  auto sd = model->state_dict();
  FoldOptions fo;
  fo.big_dtype = big_dtype(o, cfg);
  CircuitWeights w = fold_circuit_weights(cfg, sd, fo);
  EmbedGrams grams = embed_grams(w);
  done("weights");

  std::vector<uint64_t> counts;
  if (have_data) counts = model_counts(o.data_dir, vmap, cfg.d_vocab);
  TokenPools pools = make_token_pools(cfg, vmap, counts);
  std::vector<torch::Tensor> xs, ys;
  if (have_data) load_windows(o.data_dir, vmap, std::min(cfg.n_ctx, o.window_len), o.windows, xs, ys);

  // Head scores (patterns) first: the K-composition source head is the best prev-token head.
  HeadScores hs;
  HeadScoreOptions ho;
  ho.seed = o.seed;
  torch::Tensor text;
  if (have_data && L > 0) text = xs[0].narrow(1, 0, std::min<int64_t>(xs[0].size(1), 128));
  if (L > 0) hs = compute_head_scores(model, w, pools, text, ho);
  done("head_scores");
  auto pos = head_positivities(w, grams, hs.prev_token);
  done("positivity");

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
      j["labels"] = head_labels(o.thresholds, hs.prev_token[i], hs.induction[i], hs.duplicate[i], hs.prefix_matching[i],
                                hs.copying[i], hs.first_token[i]);
      heads.push_back(j);
    }

  // Composition
  json comp = nullptr;
  if (L >= 2) {
    CompositionScores cs = composition_scores(w, fo.big_dtype);
    CompositionBaseline b = random_composition_baseline(cfg.d_model, cfg.d_head, o.baseline_samples, o.seed + 11);
    auto nest = [&](const std::vector<double>& s, bool minus) {
      json a = json::array();
      for (int l1 = 0; l1 < L; ++l1) {
        json b1 = json::array();
        for (int h1 = 0; h1 < H; ++h1) {
          json c1 = json::array();
          for (int l2 = 0; l2 < L; ++l2) {
            json d1 = json::array();
            for (int h2 = 0; h2 < H; ++h2) {
              double v = s[cs.index(l1, h1, l2, h2)];
              if (minus && l1 < l2) v -= b.mean;
              d1.push_back(num(v));
            }
            c1.push_back(d1);
          }
          b1.push_back(c1);
        }
        a.push_back(b1);
      }
      return a;
    };
    comp["q"] = nest(cs.q, false);
    comp["k"] = nest(cs.k, false);
    comp["v"] = nest(cs.v, false);
    comp["q_minus_baseline"] = nest(cs.q, true);
    comp["k_minus_baseline"] = nest(cs.k, true);
    comp["v_minus_baseline"] = nest(cs.v, true);
    comp["baseline"] = {{"random_mean", num(b.mean)}, {"random_std", num(b.std)}, {"n_samples", b.n_samples},
                        {"inv_sqrt_d_model", num(b.inv_sqrt_d_model)}};
    comp["pairing"] =
        "TransformerLens: q = |OV^{h1} QK^{h2}|, k = |OV^{h1} (QK^{h2})^T|, v = |OV^{h1} OV^{h2}|, each / "
        "(|left| |right|); true Frobenius norm of the product (erratum: no cyclic shortcut)";
    json top = json::array();
    for (const auto& kind_scores :
         {std::pair<const char*, const std::vector<double>*>{"q", &cs.q}, {"k", &cs.k}, {"v", &cs.v}}) {
      // Plain variables, not a structured binding: lambdas may not capture those before C++20.
      const char* kind = kind_scores.first;
      const std::vector<double>* s = kind_scores.second;
      std::vector<std::array<int, 4>> idx;
      for (int l1 = 0; l1 < L; ++l1)
        for (int h1 = 0; h1 < H; ++h1)
          for (int l2 = l1 + 1; l2 < L; ++l2)
            for (int h2 = 0; h2 < H; ++h2) idx.push_back({l1, h1, l2, h2});
      std::stable_sort(idx.begin(), idx.end(), [&](auto a, auto b2) {
        return (*s)[cs.index(a[0], a[1], a[2], a[3])] > (*s)[cs.index(b2[0], b2[1], b2[2], b2[3])];
      });
      for (size_t r = 0; r < std::min<size_t>(10, idx.size()); ++r) {
        const auto& a = idx[r];
        const double v = (*s)[cs.index(a[0], a[1], a[2], a[3])];
        top.push_back({{"kind", kind}, {"l1", a[0]}, {"h1", a[1]}, {"l2", a[2]}, {"h2", a[3]}, {"score", num(v)},
                       {"minus_baseline", num(v - b.mean)}, {"ratio_to_baseline", num(v / b.mean)}});
      }
    }
    comp["top_k"] = top;
  }
  done("composition");

  // Bigram table
  std::unique_ptr<BigramCounts> bc;
  if (have_data) {
    data::TokenShard train(o.data_dir + "/train.bin");
    bc = std::make_unique<BigramCounts>(count_bigrams(train, vmap, cfg.d_vocab, 4000, o.bigram_max_tokens));
  }
  BigramTable bt = bigram_table(cfg, sd, bc.get(), pools.all, o.bigram_rows, o.top_k);
  json bigram;
  bigram["source"] = bt.source;
  bigram["top_k"] = bt.top_k;
  bigram["n_rows"] = bt.rows.size();
  json rows = json::array();
  for (const auto& r : bt.rows) {
    json jr;
    jr["token"] = name(r.token);
    jr["corpus_count"] = r.corpus_count ? json(*r.corpus_count) : json(nullptr);
    json mt = json::array();
    for (auto [id, lp] : r.model_top) mt.push_back({{"token", name(id)}, {"logprob", num(lp)}});
    jr["model_top"] = mt;
    if (r.corpus_top) {
      json ct = json::array();
      for (auto [id, p] : *r.corpus_top) ct.push_back({{"token", name(id)}, {"prob", num(p)}});
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
  done("bigram");

  // Skip-trigrams (1-layer models)
  json skip = nullptr;
  if (L == 1) {
    std::vector<int64_t> sources;
    if (have_data) {
      std::vector<int64_t> by = pools.all;
      std::stable_sort(by.begin(), by.end(), [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
      // skip the very most frequent (punctuation, " the") the way the paper's dumps do not:
      // we keep them; the table starts at the most frequent source token.
      sources.assign(by.begin(), by.begin() + std::min<size_t>(o.skip_sources, by.size()));
    } else {
      // most "active" sources: largest summed OV row norm over heads (E'·W_V·W_O rows)
      torch::Tensor E = w.W_E.to(torch::kFloat64);
      torch::Tensor act = torch::zeros({w.V}, torch::kFloat64);
      for (int h = 0; h < H; ++h) act += torch::matmul(E, to_torch(w.OV(0, h).AB())).norm(2, {1});
      for (int64_t id : pools.all) (void)id;
      torch::Tensor mask = torch::full({w.V}, -1.0, torch::kFloat64);
      for (int64_t id : pools.all) mask[id] = 0.0;
      act = act + mask * 1e30;
      torch::Tensor idx = std::get<1>(act.topk(std::min<int64_t>(o.skip_sources, pools.all.size())));
      for (int64_t i = 0; i < idx.numel(); ++i) sources.push_back(idx[i].item<int64_t>());
    }
    std::vector<int64_t> excl;
    if (vmap) excl.push_back(vmap->other_id());
    auto st = skip_trigrams(w, sources, o.top_k, excl);
    skip["n_sources"] = sources.size();
    skip["top_k"] = o.top_k;
    json jh = json::array();
    for (const auto& sh : st) {
      json entries = json::array();
      for (const auto& e : sh.entries) {
        json d = json::array(), out = json::array(), text = json::array();
        for (auto [id, v] : e.destinations) d.push_back({{"token", name(id)}, {"score", num(v)}});
        for (auto [id, v] : e.outputs) out.push_back({{"token", name(id)}, {"logit", num(v)}});
        for (size_t a = 0; a < std::min<size_t>(3, e.destinations.size()); ++a)
          for (size_t b2 = 0; b2 < std::min<size_t>(3, e.outputs.size()); ++b2)
            text.push_back(namer.str(e.source) + " … " + namer.str(e.destinations[a].first) + " → " +
                           namer.str(e.outputs[b2].first));
        entries.push_back({{"source", name(e.source)}, {"destinations", d}, {"outputs", out}, {"text", text}});
      }
      jh.push_back({{"layer", sh.layer}, {"head", sh.head}, {"entries", entries}});
    }
    skip["heads"] = jh;
    if (bc) {
      json bugs = json::array();
      for (const auto& b : skip_trigram_bugs(w, st, *bc)) {
        json crossed = json::array();
        std::string txt;
        for (const auto& c : b.crossed) {
          crossed.push_back({{"destination", name(c.dest)}, {"out", name(c.out)}, {"corpus_prob", num(c.prob)},
                             {"boost", num(c.boost)}});
          if (txt.empty()) txt = namer.str(b.source) + " … " + namer.str(c.dest) + " → " + namer.str(c.out);
        }
        bugs.push_back({{"layer", b.layer}, {"head", b.head}, {"source", name(b.source)},
                        {"a", {{"destination", name(b.dest_a)}, {"out", name(b.out_a)}, {"corpus_prob", num(b.prob_a)}}},
                        {"b", {{"destination", name(b.dest_b)}, {"out", name(b.out_b)}, {"corpus_prob", num(b.prob_b)}}},
                        {"crossed", crossed}, {"text", txt}});
      }
      skip["bugs"] = bugs;
    } else {
      skip["bugs"] = nullptr;
    }
  }
  done("skip_trigrams");

  // ICL and term importance
  json icl = nullptr, ti = nullptr;
  if (have_data) {
    IclResult r = icl_score(model, xs, ys);
    icl = {{"early_pos", r.pos.early}, {"late_pos", r.pos.late}, {"adjusted", r.pos.adjusted},
           {"note", r.pos.adjusted ? r.pos.note : std::string("positions 500 and 50 (0-based) as Olsson et al.")},
           {"loss_early", num(r.loss_early)}, {"loss_late", num(r.loss_late)}, {"icl_score", num(r.icl_score)},
           {"n_windows", r.n_windows}, {"window_len", r.window_len}};
    json curve = json::array();
    for (double v : r.loss_by_position) curve.push_back(num(v));
    icl["loss_by_position"] = curve;
    if (L > 0) {
      TermImportance t = term_importance(model, xs, ys, per_head_ok);
      ti = {{"n_tokens", t.n_tokens}, {"window_len", t.window_len}, {"uniform_loss", num(t.uniform_loss)},
            {"full_loss", num(t.full_loss)}};
      json orders = json::array();
      for (const auto& od : t.orders)
        orders.push_back({{"order", od.order}, {"label", od.label}, {"loss", num(od.loss)}, {"marginal_nats", num(od.marginal_nats)}});
      ti["orders"] = orders;
      json ph = json::array();
      if (per_head_ok)
        for (const auto& a : t.per_head)
          ph.push_back({{"layer", a.layer}, {"head", a.head}, {"loss_delta", num(a.loss_delta)}, {"icl_delta", opt_num(a.icl_delta)}});
      ti["per_head"] = ph;
      ti["per_head_note"] = per_head_ok ? json(nullptr)
                                        : json("per-head ablations skipped: " + std::to_string(L * H) + " heads > --per-head-max " +
                                               std::to_string(o.per_head_max));
    }
  }
  done("icl_term_importance");

  // Attention samples
  json samples = json::array();
  if (L > 0) {
    std::vector<std::pair<int, int>> chosen;
    if (L * H <= 32) {
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h) chosen.emplace_back(l, h);
    } else {
      std::set<std::pair<int, int>> s;
      for (const auto* sc : {&hs.prev_token, &hs.induction, &hs.duplicate}) {
        std::vector<int> idx(L * H);
        for (int i = 0; i < L * H; ++i) idx[i] = i;
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return (*sc)[a] > (*sc)[b]; });
        for (int r = 0; r < 3; ++r) s.insert({idx[r] / H, idx[r] % H});
      }
      chosen.assign(s.begin(), s.end());
    }
    auto sample = [&](const std::string& nm, const torch::Tensor& toks) {  // toks [1, T]
      auto cache = models::run_with_cache(model, toks, [](const std::string& n) {
                     return n.find("hook_pattern") != std::string::npos;
                   }).second;
      json tj = json::array();
      for (int64_t i = 0; i < toks.size(1); ++i) tj.push_back(name(toks[0][i].item<int64_t>()));
      json hj = json::array();
      for (auto [l, h] : chosen)
        hj.push_back({{"layer", l}, {"head", h},
                      {"pattern", pattern_json(cache.at("blocks." + std::to_string(l) + ".attn.hook_pattern")[0][h])}});
      samples.push_back({{"name", nm}, {"tokens", tj}, {"heads", hj}});
    };
    sample("repeated_random", repeated_random_tokens(pools, std::min(20, (cfg.n_ctx - 1) / 2), 1, o.seed + 5));
    if (have_data) sample("text", xs[0].narrow(0, 0, 1).narrow(1, 0, std::min<int64_t>(48, xs[0].size(1))));
  }
  done("attention_samples");
  if (o.progress) bar.finish();

  json j;
  j["format"] = "circuitlab-analysis-v1";
  j["model_dir"] = o.model_dir;
  j["data_dir"] = have_data ? json(o.data_dir) : json(nullptr);
  j["created_utc"] = now_utc();
  j["elapsed_s"] = num(total.lap());
  j["timings_s"] = timings;
  j["threads"] = at::get_num_threads();
  j["seed"] = o.seed;
  json c = models::to_json(cfg);
  c["family"] = cfg.family;
  j["config"] = c;
  j["n_params"] = model->num_parameters();
  const OvCopyingCorrelation ovc = ov_copying_correlation(pos);
  j["ov_copying_correlation"] = {{"pearson_r", num(ovc.pearson_r)}, {"heads", ovc.heads}};
  j["vocab"] = {{"compact", vmap.has_value()}, {"d_vocab", cfg.d_vocab},
                {"bos", pools.bos ? name(*pools.bos) : json(nullptr)},
                {"other", vmap ? name(vmap->other_id()) : json(nullptr)}};
  j["conventions"] = {
      {"ln_folding", w.folding_statement()},
      {"biases", "biases excluded from weight-based circuits; included in every forward pass (head scores, ICL, term importance, bigram direct path with b_U)"},
      {"positions", cfg.shortformer() ? "shortformer: W_pos enters only Q/K inputs; token circuits exclude it"
                                      : "standard: W_pos is added to the residual stream; token circuits and the bigram direct path exclude it"},
      {"composition", "true Frobenius norm of the product (no cyclic shortcut); TransformerLens pairing; baseline = mean over random Gaussian low-rank pairs of the same shapes"},
      {"head_scores", "prev/current/first-token on " + (L > 0 ? hs.prev_token_input : std::string("-")) +
                          "; induction and duplicate on [BOS, r, r] (seq_len " + std::to_string(ho.induction_seq_len) +
                          ", batch " + std::to_string(ho.induction_batch) + ", queries in the second repeat); prefix matching and copying on [start] + " +
                          std::to_string(ho.prefix_len) + " distinct random tokens x " + std::to_string(ho.prefix_repeats) +
                          (pools.trimmed_by_counts ? " (5% most and least common ids excluded)" : " (no counts: all ids)") +
                          "; random ids from the model's own vocabulary without BOS and the compact 'other' id"},
      {"icl", have_data ? icl.value("note", std::string()) : std::string("no data")}};
  j["thresholds"] = thresholds_json(o.thresholds);
  j["heads"] = heads;
  j["composition"] = comp;
  j["bigram"] = bigram;
  j["skip_trigrams"] = skip;
  j["term_importance"] = ti;
  j["icl"] = icl;
  j["attention_samples"] = samples;
  return j;
}

json analyze_snapshots(const std::string& run_dir, const AnalyzeOptions& o) {
  torch::NoGradGuard ng;
  const std::string snap_dir = run_dir + "/snapshots";
  if (!is_directory(snap_dir)) fail(run_dir + ": no snapshots/ directory (expected snapshots/step_<N>/ model dirs)");
  std::vector<std::pair<int64_t, std::string>> snaps;
  for (const auto& e : fs::directory_iterator(snap_dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step_", 0) != 0) continue;
    try {
      snaps.emplace_back(std::stoll(n.substr(5)), e.path().string());
    } catch (const std::exception&) {
      fail(snap_dir + "/" + n + ": expected a directory name step_<N> with an integer N");
    }
  }
  if (snaps.empty()) fail(snap_dir + ": no step_<N> snapshot directories");
  std::sort(snaps.begin(), snaps.end());
  std::string data_dir = o.data_dir;
  if (data_dir.empty() && file_exists(run_dir + "/../data/default/val.bin")) data_dir = run_dir + "/../data/default";
  std::map<int64_t, int64_t> tokens_at;
  if (file_exists(run_dir + "/metrics.jsonl")) {
    std::ifstream f(run_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      try {
        json m = json::parse(line);
        if (m.contains("step") && m.contains("tokens") && m["tokens"].is_number())
          tokens_at[m["step"].get<int64_t>()] = m["tokens"].get<int64_t>();
      } catch (const std::exception&) {
      }
    }
  }
  json out;
  out["format"] = "circuitlab-phase-change-v1";
  out["run_dir"] = run_dir;
  out["data_dir"] = data_dir.empty() ? json(nullptr) : json(data_dir);
  out["created_utc"] = now_utc();
  out["thresholds"] = thresholds_json(o.thresholds);
  json list = json::array();
  json phase = {{"threshold", o.thresholds.induction}, {"step", nullptr}, {"tokens", nullptr}, {"layer", nullptr}, {"head", nullptr}};
  ProgressBar bar("snapshots " + run_dir, static_cast<double>(snaps.size()), "snap");
  std::vector<uint64_t> counts;
  int k = 0;
  for (const auto& [stepn, dir] : snaps) {
    models::LoadedModel lm = models::load_model_dir(dir);
    models::HookedTransformer model = lm.model;
    model->eval();
    const auto& cfg = model->cfg();
    if (!data_dir.empty() && counts.empty()) counts = model_counts(data_dir, lm.vocab_map, cfg.d_vocab);
    TokenPools pools = make_token_pools(cfg, lm.vocab_map, counts);
    std::vector<torch::Tensor> xs, ys;
    if (!data_dir.empty()) load_windows(data_dir, lm.vocab_map, std::min(cfg.n_ctx, o.window_len), o.windows, xs, ys);
    json s;
    s["step"] = stepn;
    s["tokens"] = tokens_at.count(stepn) ? json(tokens_at[stepn]) : json(nullptr);
    json hj = json::array();
    json best_ind = nullptr, best_prev = nullptr;
    if (cfg.n_layers > 0) {
      auto sd = model->state_dict();
      CircuitWeights w = fold_circuit_weights(cfg, sd);
      HeadScoreOptions ho;
      ho.seed = o.seed;
      torch::Tensor text;
      if (!xs.empty()) text = xs[0].narrow(1, 0, std::min<int64_t>(xs[0].size(1), 128));
      HeadScores hs = compute_head_scores(model, w, pools, text, ho);
      int bi = 0, bp = 0;
      for (int i = 0; i < cfg.n_layers * cfg.n_heads; ++i) {
        hj.push_back({{"layer", i / cfg.n_heads}, {"head", i % cfg.n_heads}, {"prev_token_score", num(hs.prev_token[i])},
                      {"induction_score", num(hs.induction[i])}, {"duplicate_score", num(hs.duplicate[i])},
                      {"prefix_matching_score", num(hs.prefix_matching[i])}, {"first_token_score", num(hs.first_token[i])}});
        if (hs.induction[i] > hs.induction[bi]) bi = i;
        if (hs.prev_token[i] > hs.prev_token[bp]) bp = i;
      }
      best_ind = {{"layer", bi / cfg.n_heads}, {"head", bi % cfg.n_heads}, {"score", num(hs.induction[bi])}};
      best_prev = {{"layer", bp / cfg.n_heads}, {"head", bp % cfg.n_heads}, {"score", num(hs.prev_token[bp])}};
      if (phase["step"].is_null() && hs.induction[bi] >= o.thresholds.induction) {
        phase["step"] = stepn;
        phase["tokens"] = s["tokens"];
        phase["layer"] = bi / cfg.n_heads;
        phase["head"] = bi % cfg.n_heads;
      }
    }
    s["heads"] = hj;
    s["best_induction"] = best_ind;
    s["best_prev_token"] = best_prev;
    if (!xs.empty()) {
      IclResult r = icl_score(model, xs, ys);
      s["icl"] = {{"icl_score", num(r.icl_score)}, {"loss_early", num(r.loss_early)}, {"loss_late", num(r.loss_late)},
                  {"early_pos", r.pos.early}, {"late_pos", r.pos.late}};
    } else {
      s["icl"] = nullptr;
    }
    list.push_back(s);
    if (o.progress) bar.update(++k, "step " + std::to_string(stepn));
  }
  if (o.progress) bar.finish();
  out["snapshots"] = list;
  out["phase_change"] = phase;
  return out;
}

}  // namespace circuitlab::analysis
