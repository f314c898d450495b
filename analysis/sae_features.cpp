// Feature dashboards of an SAE in one streaming pass (see sae_features.h, SAE_FEATURES_JSON.md).
// Per batch of windows everything is a tensor over latents: firing counts, sums and maxima, a
// log10 histogram (index_add), and two running per-latent selections merged with topk over
// [kept ; this batch] — the top windows by peak activation, and a reservoir of firing windows by
// random priority — each carrying the latent's activations around its peak.
#include "analysis/sae_features.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/token_namer.h"
#include "models/hook_names.h"
#include "models/run_to_hook.h"

namespace circuitlab::analysis {

using torch::indexing::Slice;

namespace {

// The direction each decoder row writes into the residual stream, [S, D]; undefined when the
// hook has no direct path. `path` names the weights on the way.
torch::Tensor resid_directions(models::HookedTransformer& model, const models::SparseAutoencoder& sae, std::string& path) {
  const models::SaeConfig& c = sae.cfg;
  models::HookId id;
  if (!models::parse_hook_name(c.hook_name, &id)) fail("sae features: hook '" + c.hook_name + "' is not a hook name");
  const auto& cfg = model->cfg();
  const torch::Tensor W_dec = sae.W_dec.to(torch::kDouble);
  static const std::vector<std::string> resid_kinds = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
                                                      "embed", "pos_embed"};
  if (std::find(resid_kinds.begin(), resid_kinds.end(), id.kind) != resid_kinds.end()) {
    path = "W_dec";
    return W_dec;
  }
  if (id.kind == "z") {
    torch::Tensor W_O = model->W_O(id.layer).to(torch::kDouble);  // [H, Dh, D]
    if (c.hook_head_index >= 0) {
      W_O = W_O[c.hook_head_index];  // [Dh, D]
      path = "W_dec·W_O[" + std::to_string(c.hook_head_index) + "]";
    } else {
      W_O = W_O.reshape({-1, cfg.d_model});  // [H·Dh, D]
      path = "W_dec·W_O";
    }
    return W_dec.matmul(W_O);
  }
  if (id.kind == "post" && !cfg.attn_only) {
    const auto sd = model->state_dict();
    path = "W_dec·W_out";
    return W_dec.matmul(sd.at("blocks." + std::to_string(id.layer) + ".mlp.W_out").to(torch::kDouble));
  }
  return {};
}

// Top `n` columns of each row of `scores` [R, V] (largest, or smallest when !largest).
void top_columns(const torch::Tensor& scores, int n, bool largest, torch::Tensor& values, torch::Tensor& indices) {
  const int64_t k = std::min<int64_t>(n, scores.size(1));
  auto [v, i] = scores.topk(k, 1, largest, /*sorted=*/true);
  values = v.contiguous();
  indices = i.contiguous();
}

// Running per-latent selection of windows: `keep` entries per latent with their key (the value
// it is ranked by), peak activation, window, peak position and context activations [keep, C, S].
struct Selection {
  int64_t keep = 0;
  torch::Tensor key, act, window, pos, ctx;

  Selection(int64_t k, int64_t S, int64_t C)
      : keep(k),
        key(torch::full({k, S}, -1.0f)),
        act(torch::zeros({k, S})),
        window(torch::full({k, S}, -1, torch::kLong)),
        pos(torch::zeros({k, S}, torch::kLong)),
        ctx(torch::zeros({k, C, S})) {}

  // Candidates of one batch: keys [B, S] (≤ 0: not a candidate), the rest as the members.
  void merge(const torch::Tensor& ckey, const torch::Tensor& cact, const torch::Tensor& cwin, const torch::Tensor& cpos,
             const torch::Tensor& cctx) {
    if (keep == 0) return;
    const torch::Tensor k_all = torch::cat({key, ckey}, 0);
    const torch::Tensor sel = std::get<1>(k_all.topk(keep, 0, true, true));  // [keep, S]
    key = k_all.gather(0, sel);
    act = torch::cat({act, cact}, 0).gather(0, sel);
    window = torch::cat({window, cwin}, 0).gather(0, sel);
    pos = torch::cat({pos, cpos}, 0).gather(0, sel);
    const torch::Tensor sel3 = sel.unsqueeze(1).expand({keep, ctx.size(1), sel.size(1)});
    ctx = torch::cat({ctx, cctx}, 0).gather(0, sel3);
  }
};

// Every statistic of the pass, over latents.
struct FeatureAccumulator {
  int64_t S, C, before, T;
  torch::Tensor fired, sum, max, hist;  // [S] long, [S] double, [S] float, [S·bins] long
  Selection top, reservoir;
  torch::Generator gen;

  FeatureAccumulator(int64_t S_, const SaeFeatureOptions& o, int64_t T_)
      : S(S_),
        C(o.before + 1 + o.after),
        before(o.before),
        T(T_),
        fired(torch::zeros({S_}, torch::kLong)),
        sum(torch::zeros({S_}, torch::kDouble)),
        max(torch::zeros({S_})),
        hist(torch::zeros({S_ * kFeatureHistBins}, torch::kLong)),
        top(o.top, S_, C),
        reservoir(o.reservoir, S_, C),
        gen(at::detail::createCPUGenerator(o.seed)) {}

  // f [B, T, S] of windows first_window .. first_window + B − 1.
  void add(const torch::Tensor& f, int64_t first_window) {
    const int64_t B = f.size(0);
    const torch::Tensor flat = f.reshape({-1, S});
    const torch::Tensor on = flat > 0;
    fired += on.sum(0);
    sum += flat.sum(0, false, torch::kDouble);
    max = torch::maximum(max, std::get<0>(flat.max(0)));
    const torch::Tensor nz = on.nonzero();  // [M, 2]
    if (nz.size(0) > 0) {
      const torch::Tensor latent = nz.select(1, 1);
      const torch::Tensor v = flat.index({on}).to(torch::kDouble);  // row-major order, as nonzero
      const torch::Tensor bin =
          ((v.log10() - kFeatureHistLog10Lo) / kFeatureHistWidth).floor().clamp(0, kFeatureHistBins - 1).to(torch::kLong);
      hist.index_add_(0, latent * kFeatureHistBins + bin, torch::ones_like(bin));
    }
    // Each window's peak per latent, and the activations around it: [B, S], [B, C, S].
    auto [peak, ppos] = f.max(1);
    const torch::Tensor offs = torch::arange(-before, C - before, torch::kLong).view({1, C, 1});
    const torch::Tensor where = (ppos.unsqueeze(1) + offs).clamp(0, T - 1);  // [B, C, S]
    const torch::Tensor ctx = f.gather(1, where);
    const torch::Tensor win = (torch::arange(B, torch::kLong) + first_window).view({B, 1}).expand({B, S});
    const torch::Tensor fires = peak > 0;
    top.merge(torch::where(fires, peak, torch::full_like(peak, -1.0f)), peak, win, ppos, ctx);
    const torch::Tensor prio = torch::rand({B, S}, gen) + 1e-6;
    reservoir.merge(torch::where(fires, prio, torch::full_like(prio, -1.0f)), peak, win, ppos, ctx);
  }
};

// Window w's first shard offset: evenly spaced over [0, len − T].
int64_t window_offset(int64_t w, int64_t windows, int64_t len, int64_t T) {
  if (windows <= 1) return 0;
  return static_cast<int64_t>((static_cast<long double>(w) * static_cast<long double>(len - T)) /
                              static_cast<long double>(windows - 1));
}

// A Selection's tensors as accessors (reads of every latent's entries, on the CPU).
struct SelectionView {
  torch::Tensor key_t, act_t, win_t, pos_t, ctx_t;
  torch::TensorAccessor<float, 2> key, act;
  torch::TensorAccessor<int64_t, 2> win, pos;
  torch::TensorAccessor<float, 3> ctx;
  explicit SelectionView(const Selection& s)
      : key_t(s.key.contiguous()),
        act_t(s.act.contiguous()),
        win_t(s.window.contiguous()),
        pos_t(s.pos.contiguous()),
        ctx_t(s.ctx.contiguous()),
        key(key_t.accessor<float, 2>()),
        act(act_t.accessor<float, 2>()),
        win(win_t.accessor<int64_t, 2>()),
        pos(pos_t.accessor<int64_t, 2>()),
        ctx(ctx_t.accessor<float, 3>()) {}
};

FeatureExample make_example(const data::TokenShard& shard, const SelectionView& s, int64_t slot, int64_t latent,
                            const std::vector<int64_t>& offsets, int64_t T, const SaeFeatureOptions& o) {
  FeatureExample e;
  e.act = s.act[slot][latent];
  e.offset = offsets[static_cast<size_t>(s.win[slot][latent])];
  e.window_pos = s.pos[slot][latent];
  const int64_t lo = std::max<int64_t>(0, e.window_pos - o.before), hi = std::min<int64_t>(T - 1, e.window_pos + o.after);
  e.peak = static_cast<int>(e.window_pos - lo);
  for (int64_t t = lo; t <= hi; ++t) {
    e.ids.push_back(static_cast<int32_t>(shard[static_cast<size_t>(e.offset + t)]));
    e.acts.push_back(s.ctx[slot][t - e.window_pos + o.before][latent]);
  }
  return e;
}

void fill_examples(SaeFeatures& out, const FeatureAccumulator& acc, const data::TokenShard& shard,
                   const std::vector<int64_t>& offsets, const SaeFeatureOptions& o) {
  const SelectionView top(acc.top), res(acc.reservoir);
  for (auto& lf : out.latents) {
    const int64_t s = lf.index;
    for (int64_t i = 0; i < acc.top.keep; ++i)
      if (top.key[i][s] > 0) lf.top.push_back(make_example(shard, top, i, s, offsets, out.context, o));
    // Equal peaks (the same context read twice) in shard order, so the file does not depend on topk's ties.
    std::stable_sort(lf.top.begin(), lf.top.end(), [](const FeatureExample& a, const FeatureExample& b) {
      return a.act != b.act ? a.act > b.act : a.offset < b.offset;
    });
    // The reservoir's firing entries sorted by activation, then the entries at the quantiles.
    std::vector<std::pair<float, int64_t>> members;
    for (int64_t i = 0; i < acc.reservoir.keep; ++i)
      if (res.key[i][s] > 0) members.push_back({res.act[i][s], i});
    if (members.empty()) continue;
    std::sort(members.begin(), members.end());
    for (double q : o.quantiles) {
      const auto at = static_cast<size_t>(std::lround(q * static_cast<double>(members.size() - 1)));
      FeatureExample e = make_example(shard, res, members[at].second, s, offsets, out.context, o);
      e.quantile = q;
      lf.quantiles.push_back(std::move(e));
    }
  }
}

void fill_logit_effects(SaeFeatures& out, models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                        const std::optional<data::VocabMap>& vmap, const SaeFeatureOptions& o) {
  const torch::Tensor dirs = sae_logit_directions(model, sae, &out.logit_path);
  if (!dirs.defined() || o.logit_tokens <= 0) return;
  torch::NoGradGuard ng;
  const torch::Tensor W_U = model->W_U().to(torch::kFloat).contiguous();  // [D, V]
  // In blocks of latents: S × V effects at once would be 4.9 GB for GPT-2 small's 24576 latents.
  const int64_t S = dirs.size(0), chunk = 512;
  for (int64_t a = 0; a < S; a += chunk) {
    torch::Tensor hi = dirs.index({Slice(a, std::min(S, a + chunk))}).matmul(W_U);  // [chunk, V]
    torch::Tensor lo = hi.clone();
    if (vmap) {  // the "other" id is no token to list
      hi.select(1, vmap->other_id()).fill_(-INFINITY);
      lo.select(1, vmap->other_id()).fill_(INFINITY);
    }
    torch::Tensor hv, hix, lv, lix;
    top_columns(hi, o.logit_tokens, true, hv, hix);
    top_columns(lo, o.logit_tokens, false, lv, lix);
    const auto to_gpt2 = [&](int64_t id) { return vmap ? vmap->to_gpt2(id) : static_cast<int32_t>(id); };
    const auto hva = hv.accessor<float, 2>(), lva = lv.accessor<float, 2>();
    const auto hia = hix.accessor<int64_t, 2>(), lia = lix.accessor<int64_t, 2>();
    for (int64_t r = 0; r < hv.size(0); ++r) {
      LatentFeatures& lf = out.latents[static_cast<size_t>(a + r)];
      for (int64_t j = 0; j < hv.size(1); ++j) {
        lf.promoted.push_back({to_gpt2(hia[r][j]), hva[r][j]});
        lf.suppressed.push_back({to_gpt2(lia[r][j]), lva[r][j]});
      }
    }
  }
}

void fill_neighbors(SaeFeatures& out, const models::SparseAutoencoder& sae, int n) {
  const int64_t S = sae.cfg.d_sae;
  if (n <= 0 || S < 2) return;
  const torch::Tensor Wn = sae.W_dec / sae.W_dec.norm(2, 1, true).clamp_min(1e-12);
  const int64_t chunk = 1024, k = std::min<int64_t>(n, S - 1);
  for (int64_t a = 0; a < S; a += chunk) {
    const int64_t b = std::min(S, a + chunk);
    torch::Tensor cos = Wn.index({Slice(a, b)}).matmul(Wn.t());  // [b − a, S]
    cos.index_put_({torch::arange(b - a), torch::arange(a, b)}, -INFINITY);
    auto [v, i] = cos.topk(k, 1, true, true);
    const auto va = v.accessor<float, 2>();
    const auto ia = i.accessor<int64_t, 2>();
    for (int64_t r = 0; r < b - a; ++r)
      for (int64_t j = 0; j < k; ++j) out.latents[static_cast<size_t>(a + r)].neighbors.push_back({ia[r][j], va[r][j]});
  }
}

}  // namespace

torch::Tensor sae_logit_directions(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                   std::string* path_out) {
  torch::NoGradGuard ng;
  std::string path;
  torch::Tensor dir = resid_directions(model, sae, path);  // [S, D] double
  if (!dir.defined()) {
    if (path_out) *path_out = "";
    return {};
  }
  const auto& cfg = model->cfg();
  if (dir.size(1) != cfg.d_model)
    fail("sae features: the SAE's d_in " + std::to_string(sae.cfg.d_in) + " does not fit hook '" + sae.cfg.hook_name + "'");
  if (cfg.has_ln()) {  // folded final LayerNorm: centre, then scale by ln_final.w (direct effect)
    dir = dir - dir.mean(1, true);
    dir = dir * model->state_dict().at("ln_final.w").to(torch::kDouble);
    path += "·ln_final";
  }
  path += "·W_U";
  if (path_out) *path_out = path;
  return dir.to(torch::kFloat);
}

SaeFeatures compute_sae_features(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                 const data::TokenShard& shard, const std::optional<data::VocabMap>& vocab_map,
                                 const SaeFeatureOptions& opt, const std::function<void(int64_t, int64_t)>& progress) {
  const models::SaeConfig& c = sae.cfg;
  if (!model->has_hook_point(c.hook_name))
    fail("sae features: the SAE's hook '" + c.hook_name + "' is not a hook point of this model");
  if (opt.tokens < 1) fail("tokens: must be >= 1 (zero tokens to read)");
  if (opt.top < 0 || opt.reservoir < 0 || opt.before < 0 || opt.after < 0)
    fail("sae features: top, reservoir, before and after must be >= 0");
  for (double q : opt.quantiles)
    if (!(q >= 0 && q <= 1)) fail("sae features: quantiles must lie in [0, 1]");
  SaeFeatures out;
  int64_t T = opt.context > 0 ? opt.context : (c.context_size > 0 ? c.context_size : 128);
  T = std::min<int64_t>(T, model->cfg().n_ctx);
  const auto len = static_cast<int64_t>(shard.size());
  if (len < T) fail("sae features: " + shard.path() + " holds " + std::to_string(len) + " tokens, fewer than one window of " +
                    std::to_string(T));
  out.context = T;
  out.windows = std::max<int64_t>(1, opt.tokens / T);
  std::vector<int64_t> offsets;
  for (int64_t w = 0; w < out.windows; ++w) offsets.push_back(window_offset(w, out.windows, len, T));

  torch::NoGradGuard ng;
  model->eval();
  FeatureAccumulator acc(c.d_sae, opt, T);
  for (int64_t w0 = 0; w0 < out.windows; w0 += opt.batch_windows) {
    const int64_t B = std::min(opt.batch_windows, out.windows - w0);
    torch::Tensor toks = torch::empty({B, T}, torch::kLong);
    auto a = toks.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int32_t id = shard[static_cast<size_t>(offsets[static_cast<size_t>(w0 + b)] + t)];
        a[b][t] = vocab_map ? vocab_map->to_compact(id) : id;
      }
    const torch::Tensor x = models::sae_input_from_hook(models::run_to_hook(model, toks, c.hook_name), c);  // [B·T, d]
    acc.add(sae.encode(x).reshape({B, T, c.d_sae}), w0);
    if (progress) progress(w0 + B, out.windows);
  }
  out.tokens = out.windows * T;

  out.latents.resize(static_cast<size_t>(c.d_sae));
  const torch::Tensor fired = acc.fired.contiguous(), sum = acc.sum.contiguous(), mx = acc.max.contiguous();
  const torch::Tensor hist = acc.hist.contiguous();
  const int64_t* fa = fired.data_ptr<int64_t>();
  const double* sa = sum.data_ptr<double>();
  const float* ma = mx.data_ptr<float>();
  const int64_t* ha = hist.data_ptr<int64_t>();
  for (int64_t s = 0; s < c.d_sae; ++s) {
    LatentFeatures& lf = out.latents[static_cast<size_t>(s)];
    lf.index = s;
    lf.fired = fa[s];
    lf.sum = sa[s];
    lf.max = ma[s];
    lf.hist.assign(ha + s * kFeatureHistBins, ha + (s + 1) * kFeatureHistBins);
  }
  fill_examples(out, acc, shard, offsets, opt);
  fill_logit_effects(out, model, sae, vocab_map, opt);
  fill_neighbors(out, sae, opt.neighbors);
  return out;
}

std::string feature_label(const LatentFeatures& lf, const data::TokenNamer& namer) {
  if (lf.fired == 0) return "dead";
  // Distinct peak tokens of the top examples, by count (ties: the stronger example first).
  std::vector<std::pair<int32_t, int>> counts;
  for (const auto& e : lf.top) {
    const int32_t id = e.ids[static_cast<size_t>(e.peak)];
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& p) { return p.first == id; });
    if (it == counts.end()) counts.push_back({id, 1});
    else ++it->second;
  }
  std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string label;
  for (size_t i = 0; i < counts.size() && i < 3; ++i) label += (i ? " / " : "") + namer.gpt2_str(counts[i].first);
  if (!lf.promoted.empty()) label += " → " + namer.gpt2_str(lf.promoted.front().gpt2_id);
  return label;
}

namespace {

nlohmann::json example_json(const FeatureExample& e, const data::TokenNamer& namer) {
  nlohmann::json strs = nlohmann::json::array();
  for (int32_t id : e.ids) strs.push_back(namer.gpt2_str(id));
  nlohmann::json j = {{"act", e.act}, {"offset", e.offset}, {"peak", e.peak}, {"ids", e.ids}, {"strs", strs}, {"acts", e.acts}};
  if (e.quantile >= 0) j["quantile"] = e.quantile;
  return j;
}

nlohmann::json effects_json(const std::vector<TokenEffect>& v, const data::TokenNamer& namer) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& t : v) a.push_back({{"id", t.gpt2_id}, {"str", namer.gpt2_str(t.gpt2_id)}, {"value", t.value}});
  return a;
}

nlohmann::json latent_json(const LatentFeatures& lf, int64_t tokens, const data::TokenNamer& namer) {
  int first = 0, last = -1;
  for (int b = 0; b < kFeatureHistBins; ++b)
    if (lf.hist[static_cast<size_t>(b)] > 0) {
      if (last < 0) first = b;
      last = b;
    }
  const std::vector<int64_t> counts(lf.hist.begin() + first, lf.hist.begin() + last + 1);
  nlohmann::json top = nlohmann::json::array(), quant = nlohmann::json::array(), nb = nlohmann::json::array();
  for (const auto& e : lf.top) top.push_back(example_json(e, namer));
  for (const auto& e : lf.quantiles) quant.push_back(example_json(e, namer));
  for (const auto& [i, c] : lf.neighbors) nb.push_back({{"index", i}, {"cosine", c}});
  return {{"index", lf.index},
          {"density", static_cast<double>(lf.fired) / static_cast<double>(tokens)},
          {"fired", lf.fired},
          {"max", lf.max},
          {"mean", lf.fired > 0 ? nlohmann::json(lf.sum / static_cast<double>(lf.fired)) : nlohmann::json(nullptr)},
          {"label", feature_label(lf, namer)},
          {"hist", {{"first", first}, {"counts", counts}}},
          {"top", top},
          {"quantiles", quant},
          {"promoted", effects_json(lf.promoted, namer)},
          {"suppressed", effects_json(lf.suppressed, namer)},
          {"neighbors", nb}};
}

// Latents by log10(density): bins of 0.25 from the lowest measurable density (1 / tokens) to 1.
nlohmann::json density_histogram(const SaeFeatures& f) {
  const double width = 0.25;
  const double lo = std::floor(std::log10(1.0 / static_cast<double>(f.tokens)) / width) * width;
  const int bins = static_cast<int>(std::ceil(-lo / width)) + 1;
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  int64_t dead = 0;
  for (const auto& lf : f.latents) {
    if (lf.fired == 0) {
      ++dead;
      continue;
    }
    const double l = std::log10(static_cast<double>(lf.fired) / static_cast<double>(f.tokens));
    const int b = std::clamp(static_cast<int>(std::floor((l - lo) / width)), 0, bins - 1);
    ++counts[static_cast<size_t>(b)];
  }
  return {{"log10_lo", lo}, {"width", width}, {"counts", counts}, {"dead", dead}};
}

}  // namespace

nlohmann::json sae_features_json(const SaeFeatures& f, const models::SparseAutoencoder& sae,
                                 const models::ModelConfig& model_cfg, bool compact_vocab,
                                 const SaeFeatureOptions& opt, const data::TokenNamer& namer, const nlohmann::json& meta) {
  const models::SaeConfig& c = sae.cfg;
  std::string sae_dir = meta.value("sae_dir", "");
  while (sae_dir.size() > 1 && sae_dir.back() == '/') sae_dir.pop_back();
  const size_t slash = sae_dir.find_last_of('/');
  const bool topk = c.architecture == models::SaeArchitecture::TopK || c.architecture == models::SaeArchitecture::BatchTopK;
  nlohmann::json latents = nlohmann::json::array();
  int64_t dead = 0, dense1 = 0, dense10 = 0, firing = 0;
  for (const auto& lf : f.latents) {
    latents.push_back(latent_json(lf, f.tokens, namer));
    const double d = static_cast<double>(lf.fired) / static_cast<double>(f.tokens);
    dead += lf.fired == 0;
    dense1 += d > 0.01;
    dense10 += d > 0.10;
    firing += lf.fired;
  }
  return {
      {"format", "circuitlab-sae-features-v1"},
      {"sae",
       {{"dir", meta.value("sae_dir", "")},
        {"name", slash == std::string::npos ? sae_dir : sae_dir.substr(slash + 1)},
        {"architecture", models::sae_architecture_name(c.architecture == models::SaeArchitecture::BatchTopK
                                                           ? models::SaeArchitecture::JumpReLU
                                                           : c.architecture)},
        {"d_in", c.d_in},
        {"d_sae", c.d_sae},
        {"k", topk ? nlohmann::json(c.k) : nlohmann::json(nullptr)},
        {"hook_name", c.hook_name},
        {"hook_head_index", c.hook_head_index >= 0 ? nlohmann::json(c.hook_head_index) : nlohmann::json(nullptr)}}},
      {"model", {{"dir", meta.value("model_dir", "")}, {"d_vocab", model_cfg.d_vocab}, {"compact_vocab", compact_vocab}}},
      {"data",
       {{"dir", meta.value("data_dir", "")},
        {"split", meta.value("split", "train")},
        {"tokens", f.tokens},
        {"windows", f.windows},
        {"context", f.context}}},
      {"options",
       {{"top", opt.top},
        {"quantile_examples", opt.quantiles},
        {"reservoir", opt.reservoir},
        {"before", opt.before},
        {"after", opt.after},
        {"logit_tokens", opt.logit_tokens},
        {"neighbors", opt.neighbors},
        {"seed", opt.seed}}},
      {"logit_path", f.logit_path},
      {"histogram_bins", {{"log10_lo", kFeatureHistLog10Lo}, {"width", kFeatureHistWidth}, {"count", kFeatureHistBins}}},
      {"density_histogram", density_histogram(f)},
      {"summary",
       {{"dead", dead},
        {"dense_1pct", dense1},
        {"dense_10pct", dense10},
        {"mean_l0", static_cast<double>(firing) / static_cast<double>(f.tokens)}}},
      {"latents", latents}};
}

}  // namespace circuitlab::analysis
