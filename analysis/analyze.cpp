// The analysis driver: loads the model dir and the data, then runs the battery as a list of
// steps, each returning its struct (analyze_steps.h); analysis_json.cpp turns the result into
// analysis.json. Selection rules (top pairs, sampled heads, skip-trigram sources) live here,
// the analyses in their own files.
#include "analysis/analyze.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <memory>
#include <set>

#include "analysis/analysis_json.h"
#include "analysis/analyze_steps.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "data/batches.h"
#include "data/shards.h"
#include "data/token_namer.h"
#include "models/hook_names.h"
#include "models/model_dir.h"

namespace circuitlab::analysis {

using nlohmann::json;

namespace {

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double lap() {
    auto t = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(t - t0).count();
    t0 = t;
    return s;
  }
};

}  // namespace

// ---- inputs ------------------------------------------------------------------------------------

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

torch::Dtype big_dtype(Precision p, const models::ModelConfig& c) {
  switch (p) {
    case Precision::Double: return torch::kFloat64;
    case Precision::Float: return torch::kFloat32;
    case Precision::Auto: break;
  }
  return double(c.d_vocab) * c.d_model * c.d_model > 2e9 ? torch::kFloat32 : torch::kFloat64;
}

// ---- steps -------------------------------------------------------------------------------------

std::vector<CompositionPair> top_composition_pairs(const CompositionScores& cs, int top_k) {
  std::vector<CompositionPair> top;
  const int L = cs.L, H = cs.H;
  for (const auto& [kind, s] : {std::pair<const char*, const std::vector<double>*>{"q", &cs.q}, {"k", &cs.k}, {"v", &cs.v}}) {
    std::vector<std::array<int, 4>> idx;
    for (int l1 = 0; l1 < L; ++l1)
      for (int h1 = 0; h1 < H; ++h1)
        for (int l2 = l1 + 1; l2 < L; ++l2)
          for (int h2 = 0; h2 < H; ++h2) idx.push_back({l1, h1, l2, h2});
    const std::vector<double>& sc = *s;
    std::stable_sort(idx.begin(), idx.end(), [&cs, &sc](const std::array<int, 4>& a, const std::array<int, 4>& b) {
      return sc[cs.index(a[0], a[1], a[2], a[3])] > sc[cs.index(b[0], b[1], b[2], b[3])];
    });
    for (size_t r = 0; r < std::min<size_t>(static_cast<size_t>(top_k), idx.size()); ++r) {
      const auto& a = idx[r];
      top.push_back({kind, a[0], a[1], a[2], a[3], sc[cs.index(a[0], a[1], a[2], a[3])]});
    }
  }
  return top;
}

CompositionResult composition_step(const CircuitWeights& w, torch::Dtype dtype, const AnalyzeOptions& o) {
  CompositionResult c;
  c.L = w.L;
  c.H = w.H;
  c.scores = composition_scores(w, dtype);
  c.baseline = random_composition_baseline(w.cfg.d_model, w.cfg.d_head, o.baseline_samples, o.seed + 11);
  c.top = top_composition_pairs(c.scores, o.composition_top_k);
  return c;
}

SkipTrigramResult skip_trigram_step(const CircuitWeights& w, const TokenPools& pools, const std::vector<uint64_t>& counts,
                                    const BigramCounts* bc, const std::optional<data::VocabMap>& vmap,
                                    const AnalyzeOptions& o) {
  SkipTrigramResult r;
  r.top_k = o.top_k;
  r.text_pairs = o.skip_text_pairs;
  if (!counts.empty()) {
    // The most frequent source tokens first (punctuation, " the" included, as the corpus has them).
    std::vector<int64_t> by = pools.all;
    std::stable_sort(by.begin(), by.end(), [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
    r.sources.assign(by.begin(), by.begin() + std::min<size_t>(o.skip_sources, by.size()));
  } else {
    // The most "active" sources: largest summed OV row norm over heads (E'·W_V·W_O rows).
    torch::Tensor E = w.W_E.to(torch::kFloat64);
    torch::Tensor act = torch::zeros({w.V}, torch::kFloat64);
    for (int h = 0; h < w.H; ++h) act += torch::matmul(E, to_torch(w.OV(0, h).AB())).norm(2, {1});
    torch::Tensor mask = torch::full({w.V}, -1.0, torch::kFloat64);
    for (int64_t id : pools.all) mask[id] = 0.0;
    act = act + mask * 1e30;
    torch::Tensor idx = std::get<1>(act.topk(std::min<int64_t>(o.skip_sources, pools.all.size())));
    for (int64_t i = 0; i < idx.numel(); ++i) r.sources.push_back(idx[i].item<int64_t>());
  }
  std::vector<int64_t> excl;
  if (vmap) excl.push_back(vmap->other_id());
  r.heads = skip_trigrams(w, r.sources, o.top_k, excl);
  if (bc) r.bugs = skip_trigram_bugs(w, r.heads, *bc);
  return r;
}

std::vector<std::pair<int, int>> sample_heads(const HeadScores& hs, int L, int H, const AnalyzeOptions& o) {
  std::vector<std::pair<int, int>> chosen;
  if (L * H <= o.sample_all_heads_max) {
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) chosen.emplace_back(l, h);
    return chosen;
  }
  std::set<std::pair<int, int>> s;
  for (const auto* sc : {&hs.prev_token, &hs.induction, &hs.duplicate}) {
    std::vector<int> idx(L * H);
    for (int i = 0; i < L * H; ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return (*sc)[a] > (*sc)[b]; });
    for (int r = 0; r < o.sample_heads_per_score && r < L * H; ++r) s.insert({idx[r] / H, idx[r] % H});
  }
  chosen.assign(s.begin(), s.end());
  return chosen;
}

AttentionSample attention_sample(models::HookedTransformer& model, const std::string& name, const torch::Tensor& toks,
                                 const std::vector<std::pair<int, int>>& heads) {
  auto cache = models::run_with_cache(model, toks, models::hooks::is_kind("pattern")).second;
  AttentionSample s;
  s.name = name;
  s.tokens = toks;
  s.heads = heads;
  for (const auto& [l, h] : heads) s.patterns.push_back(cache.at(models::hooks::pattern(l))[0][h]);
  return s;
}

// ---- the driver ----------------------------------------------------------------------------------

json analyze_model(const AnalyzeOptions& o) {
  torch::NoGradGuard ng;
  Timer total, lap;
  models::LoadedModel lm = models::load_model_dir(o.model_dir);
  models::HookedTransformer model = lm.model;
  model->eval();
  const models::ModelConfig& cfg = model->cfg();
  const auto& vmap = lm.vocab_map;
  const bool have_data = !o.data_dir.empty();
  // Token objects {"id", "gpt2_id", "str"} (ANALYSIS_JSON.md), named by the namer the lab shares.
  const auto namer = data::TokenNamer::with_default_tokenizer(vmap ? &*vmap : nullptr);
  const int L = cfg.n_layers, H = cfg.n_heads;
  AnalysisResult r;
  r.cfg = cfg;
  r.have_data = have_data;

  // Steps: weights, head scores, positivity, composition, bigram, skip-trigrams, ICL/term importance, samples.
  ProgressBar bar("analyze " + o.model_dir, 8, "step");
  auto done = [&](const std::string& what) {
    r.timings_s.emplace_back(what, lap.lap());
    if (o.progress) bar.update(static_cast<double>(r.timings_s.size()), what);
  };

  auto sd = model->state_dict();
  FoldOptions fo;
  fo.big_dtype = big_dtype(o.precision, cfg);
  CircuitWeights w = fold_circuit_weights(cfg, sd, fo);
  EmbedGrams grams = embed_grams(w);
  done("weights");

  std::vector<uint64_t> counts;
  if (have_data) counts = model_counts(o.data_dir, vmap, cfg.d_vocab);
  TokenPools pools = make_token_pools(cfg, vmap, counts);
  std::vector<torch::Tensor> xs, ys;
  if (have_data) load_windows(o.data_dir, vmap, std::min(cfg.n_ctx, o.window_len), o.windows, xs, ys);

  // Head scores (patterns) first: the K-composition source head is the best prev-token head.
  r.head_score_options.seed = o.seed;
  torch::Tensor text;
  if (have_data && L > 0) text = xs[0].narrow(1, 0, std::min<int64_t>(xs[0].size(1), o.head_score_text_len));
  if (L > 0) r.head_scores = compute_head_scores(model, w, pools, text, r.head_score_options);
  done("head_scores");
  r.positivity = head_positivities(w, grams, r.head_scores.prev_token);
  done("positivity");

  if (L >= 2) r.composition = composition_step(w, fo.big_dtype, o);
  done("composition");

  std::unique_ptr<BigramCounts> bc;
  if (have_data) {
    data::TokenShard train(o.data_dir + "/train.bin");
    bc = std::make_unique<BigramCounts>(count_bigrams(train, vmap, cfg.d_vocab, o.bigram_sources, o.bigram_max_tokens));
  }
  r.bigram = bigram_table(cfg, sd, bc.get(), pools.all, o.bigram_rows, o.top_k);
  done("bigram");

  if (L == 1) r.skip_trigrams = skip_trigram_step(w, pools, counts, bc.get(), vmap, o);
  done("skip_trigrams");

  if (have_data) {
    r.icl = icl_score(model, xs, ys);
    if (L > 0) {
      const bool per_head_ok = L * H <= o.per_head_max;
      r.term_importance = TermImportanceResult{term_importance(model, xs, ys, per_head_ok), per_head_ok, L * H, o.per_head_max};
    }
  }
  done("icl_term_importance");

  if (L > 0) {
    const auto heads = sample_heads(r.head_scores, L, H, o);
    r.samples.push_back(attention_sample(
        model, "repeated_random",
        repeated_random_tokens(pools, std::min(o.sample_repeat_len, (cfg.n_ctx - 1) / 2), 1, o.seed + 5), heads));
    if (have_data)
      r.samples.push_back(attention_sample(
          model, "text", xs[0].narrow(0, 0, 1).narrow(1, 0, std::min<int64_t>(o.sample_text_len, xs[0].size(1))), heads));
  }
  done("attention_samples");
  if (o.progress) bar.finish();

  r.n_params = model->num_parameters();
  r.compact_vocab = vmap.has_value();
  r.bos = pools.bos;
  if (vmap) r.other = vmap->other_id();
  r.folding_statement = w.folding_statement();
  r.pools_trimmed_by_counts = pools.trimmed_by_counts;
  r.elapsed_s = total.lap();
  return analysis_json(r, o, namer);
}

}  // namespace circuitlab::analysis
