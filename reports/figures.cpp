// Vega-Lite specs of the report's figures (see figures.h). Data values are copied from
// analysis.json / metrics.jsonl / phase_change.json; no score is computed here.
#include "reports/figures.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "reports/json_access.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;

const char* kSchema = "https://vega.github.io/schema/vega-lite/v6.json";


Figure make(const std::string& id, const std::string& title, const std::string& caption, json spec) {
  return Figure{id, title, caption, std::move(spec)};
}

const std::vector<json>& heads_of(const RunInputs& r) {
  static const std::vector<json> empty;
  auto h = get(r.analysis, "heads");
  if (!h || !h->is_array()) return empty;
  return h->get_ref<const json::array_t&>();
}

bool has_label(const json& head, const std::string& label) {
  auto l = get(head, "labels");
  if (!l || !l->is_array()) return false;
  for (auto& s : *l)
    if (s.is_string() && s.get<std::string>() == label) return true;
  return false;
}

// Head labels in layer-major order, for sorting facets and axes.
json head_order(const RunInputs& r) {
  json order = json::array();
  for (int l = 0; l < r.shape.n_layers; ++l)
    for (int h = 0; h < r.shape.n_heads; ++h) order.push_back(head_label(l, h));
  return order;
}

}  // namespace

json base_spec(const std::string& title) {
  return json{{"$schema", kSchema},
              {"title", title},
              {"background", "white"},
              {"config", {{"font", "Helvetica, Arial, sans-serif"},
                          {"axis", {{"labelFontSize", 11}, {"titleFontSize", 12}}},
                          {"legend", {{"labelFontSize", 11}, {"titleFontSize", 12}}},
                          {"title", {{"fontSize", 14}, {"anchor", "start"}}}}}};
}

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

std::optional<Figure> fig_loss_curves(const std::vector<const RunInputs*>& runs, const FigureLimits& lim,
                                      std::vector<std::string>* notes) {
  json values = json::array();
  for (const RunInputs* r : runs) {
    for (const char* split : {"train_loss", "val_loss"}) {
      std::vector<const json*> rows;
      for (auto& m : r->metrics)
        if (num(m, split) == num(m, split) && num(m, "tokens") > 0) rows.push_back(&m);
      size_t stride = std::max<size_t>(1, (rows.size() + lim.max_curve_points - 1) / lim.max_curve_points);
      if (stride > 1 && notes)
        notes->push_back(r->name + ": " + split + " curve drawn from every " + std::to_string(stride) +
                         "th of " + std::to_string(rows.size()) + " logged steps (the last one always kept)");
      for (size_t i = 0; i < rows.size(); ++i) {
        if (i % stride != 0 && i + 1 != rows.size()) continue;
        values.push_back({{"run", r->name},
                          {"split", std::string(split) == "train_loss" ? "train" : "val"},
                          {"step", (*rows[i]).value("step", 0)},
                          {"tokens", num(*rows[i], "tokens")},
                          {"loss", round_to(num(*rows[i], split), 5)}});
      }
    }
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec("Training and validation loss");
  spec["width"] = 620;
  spec["height"] = 300;
  spec["data"] = {{"values", values}};
  spec["mark"] = {{"type", "line"}, {"point", false}, {"strokeWidth", 1.6}};
  spec["encoding"] = {
      {"x", {{"field", "tokens"}, {"type", "quantitative"}, {"scale", {{"type", "log"}}}, {"title", "tokens trained"}}},
      {"y", {{"field", "loss"}, {"type", "quantitative"}, {"scale", {{"zero", false}}}, {"title", "loss (nats/token)"}}},
      {"color", {{"field", "run"}, {"type", "nominal"}, {"title", "run"}}},
      {"strokeDash", {{"field", "split"}, {"type", "nominal"}, {"title", "split"}}},
      {"tooltip", json::array({{{"field", "run"}}, {{"field", "split"}}, {{"field", "step"}},
                               {{"field", "tokens"}, {"format", ","}}, {{"field", "loss"}, {"format", ".4f"}}})}};
  return make("loss-curves", "Loss curves",
              "Mean cross-entropy per token from each run's <code>metrics.jsonl</code> (train: every logged step; "
              "val: eval steps), against tokens trained on a log axis. The phase change of two-layer models shows "
              "as a bump in the curve.",
              spec);
}

std::optional<Figure> fig_icl_over_training(const std::vector<const RunInputs*>& runs) {
  json values = json::array(), rules = json::array();
  for (const RunInputs* r : runs) {
    auto snaps = get(r->phase, "snapshots");
    if (!snaps || !snaps->is_array()) continue;
    for (auto& s : *snaps) {
      auto icl = get(s, "icl");
      if (!icl) continue;
      double v = num(*icl, "icl_score");
      if (std::isnan(v)) continue;
      values.push_back({{"run", r->name}, {"step", s.value("step", 0)}, {"icl", round_to(v, 5)}});
    }
    auto pc = get(r->phase, "phase_change");
    if (pc && get(*pc, "step")) rules.push_back({{"run", r->name}, {"step", (*pc)["step"]}});
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec("In-context learning score over training");
  spec["width"] = 620;
  spec["height"] = 260;
  json line = {{"data", {{"values", values}}},
               {"mark", {{"type", "line"}, {"point", true}}},
               {"encoding", {{"x", {{"field", "step"}, {"type", "quantitative"}, {"scale", {{"type", "symlog"}}}, {"title", "training step"}}},
                             {"y", {{"field", "icl"}, {"type", "quantitative"}, {"title", "ICL score (nats; loss late − loss early)"}}},
                             {"color", {{"field", "run"}, {"type", "nominal"}}},
                             {"tooltip", json::array({{{"field", "run"}}, {{"field", "step"}}, {{"field", "icl"}, {"format", ".4f"}}})}}}};
  spec["layer"] = json::array({line});
  if (!rules.empty())
    spec["layer"].push_back({{"data", {{"values", rules}}},
                             {"mark", {{"type", "rule"}, {"strokeDash", json::array({4, 3})}}},
                             {"encoding", {{"x", {{"field", "step"}, {"type", "quantitative"}}},
                                           {"color", {{"field", "run"}, {"type", "nominal"}}}}}});
  return make("icl-over-training", "ICL score over training",
              "ICL score of every snapshot (<code>phase_change.json</code>, <code>circuitlab analyze --snapshots</code>); "
              "dashed rules mark the step where the best induction score first crosses its threshold. "
              "The paper: below 0.15 nats before the phase change, about 0.4 after.",
              spec);
}

std::optional<Figure> fig_loss_by_position(const std::vector<const RunInputs*>& runs) {
  json values = json::array(), marks = json::array();
  for (const RunInputs* r : runs) {
    auto icl = get(r->analysis, "icl");
    if (!icl) continue;
    auto lbp = get(*icl, "loss_by_position");
    if (!lbp || !lbp->is_array()) continue;
    for (size_t p = 0; p < lbp->size(); ++p)
      if ((*lbp)[p].is_number())
        values.push_back({{"run", r->name}, {"pos", static_cast<int>(p) + 1}, {"loss", round_to((*lbp)[p].get<double>(), 4)}});
    for (const char* which : {"early_pos", "late_pos"})
      if (get(*icl, which)) marks.push_back({{"run", r->name}, {"pos", (*icl)[which].get<int>() + 1}, {"which", which}});
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec("Loss by token position");
  spec["width"] = 620;
  spec["height"] = 260;
  spec["layer"] = json::array(
      {{{"data", {{"values", values}}},
        {"mark", {{"type", "line"}, {"strokeWidth", 1.4}}},
        {"encoding", {{"x", {{"field", "pos"}, {"type", "quantitative"}, {"scale", {{"type", "log"}}}, {"title", "token position in context (1-based)"}}},
                      {"y", {{"field", "loss"}, {"type", "quantitative"}, {"scale", {{"zero", false}}}, {"title", "mean loss (nats)"}}},
                      {"color", {{"field", "run"}, {"type", "nominal"}}},
                      {"tooltip", json::array({{{"field", "run"}}, {{"field", "pos"}}, {{"field", "loss"}, {"format", ".4f"}}})}}}},
       {{"data", {{"values", marks}}},
        {"mark", {{"type", "rule"}, {"strokeDash", json::array({2, 2})}, {"opacity", 0.6}}},
        {"encoding", {{"x", {{"field", "pos"}, {"type", "quantitative"}}}, {"color", {{"field", "run"}, {"type", "nominal"}}}}}}});
  return make("loss-by-position", "Loss by position (the ICL score's source)",
              "Mean validation loss at each position of the context (<code>icl.loss_by_position</code>); dotted rules mark "
              "the early and late positions whose difference is the ICL score.",
              spec);
}

std::optional<Figure> fig_bigram_stats(const std::vector<const RunInputs*>& runs) {
  json values = json::array();
  for (const RunInputs* r : runs) {
    auto b = get(r->analysis, "bigram");
    if (!b) continue;
    double agree = num(*b, "top1_agreement"), kl = num(*b, "kl_corpus_model");
    std::string src = b->value("source", "");
    if (!std::isnan(agree)) values.push_back({{"run", r->name}, {"metric", "top-1 agreement with corpus"}, {"value", round_to(agree, 5)}, {"source", src}});
    if (!std::isnan(kl)) values.push_back({{"run", r->name}, {"metric", "KL(corpus ‖ model), nats"}, {"value", round_to(kl, 5)}, {"source", src}});
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec("Bigram statistics: model (or direct path) against the corpus");
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"column", {{"field", "metric"}, {"type", "nominal"}, {"title", nullptr}}}};
  spec["resolve"] = {{"scale", {{"y", "independent"}}}};
  spec["spec"] = {{"width", 260},
                  {"height", 200},
                  {"mark", "bar"},
                  {"encoding", {{"x", {{"field", "run"}, {"type", "nominal"}, {"title", nullptr}}},
                                {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", nullptr}}},
                                {"color", {{"field", "source"}, {"type", "nominal"}, {"title", "table"}}},
                                {"tooltip", json::array({{{"field", "run"}}, {{"field", "metric"}}, {{"field", "value"}, {"format", ".4f"}}})}}}};
  return make("bigram-stats", "Bigram agreement",
              "Zero-layer models' logit table and deeper models' direct path W<sub>E</sub>·W<sub>U</sub> against the "
              "corpus's empirical next-token distribution (<code>bigram.top1_agreement</code>, <code>bigram.kl_corpus_model</code>, "
              "over sources seen at least 20 times).",
              spec);
}

std::optional<Figure> fig_positivity(const RunInputs& r) {
  json values = json::array();
  for (auto& h : heads_of(r)) {
    for (auto [key, name] : {std::pair{"ov_positivity", "OV circuit"}, std::pair{"qk_positivity", "QK circuit"}}) {
      double v = num(h, key);
      if (!std::isnan(v)) values.push_back({{"head", head_label(h)}, {"circuit", name}, {"positivity", round_to(v, 5)}});
    }
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec(r.name + ": eigenvalue positivity Σλ/Σ|λ| per head");
  spec["width"] = std::max(240, 44 * r.shape.n_heads * std::max(1, r.shape.n_layers));
  spec["height"] = 220;
  spec["data"] = {{"values", values}};
  spec["mark"] = "bar";
  spec["encoding"] = {
      {"x", {{"field", "head"}, {"type", "nominal"}, {"sort", head_order(r)}, {"title", "head"}}},
      {"xOffset", {{"field", "circuit"}, {"type", "nominal"}}},
      {"y", {{"field", "positivity"}, {"type", "quantitative"}, {"scale", {{"domain", json::array({-1, 1})}}}, {"title", "Σλ / Σ|λ|"}}},
      {"color", {{"field", "circuit"}, {"type", "nominal"}, {"scale", {{"range", json::array({"#c0392b", "#2e86c1"})}}}}},
      {"tooltip", json::array({{{"field", "head"}}, {{"field", "circuit"}}, {{"field", "positivity"}, {"format", ".3f"}}})}};
  return make("positivity-" + slug(r.name), r.name + ": OV and QK positivity",
              "Eigenvalue positivity of each head's full-vocabulary OV circuit W<sub>E</sub>·OV·W<sub>U</sub> (copying: +1) and "
              "token-token QK circuit W<sub>E</sub>·QK·W<sub>E</sub><sup>T</sup> (<code>heads[].ov_positivity</code>, "
              "<code>qk_positivity</code>). A random matrix scores about 0.",
              spec);
}

std::optional<Figure> fig_attention(const RunInputs& r, const json& sample, const FigureLimits& lim,
                                    std::vector<std::string>* notes) {
  auto heads = get(sample, "heads");
  if (!heads || !heads->is_array() || heads->empty()) return std::nullopt;
  std::string name = sample.value("name", "sample");
  size_t T = 0;
  for (auto& h : *heads) T = std::max(T, h.value("pattern", json::array()).size());
  if (T == 0) return std::nullopt;
  // Causal cells per head: T(T+1)/2. Keep every head when it fits, else crop positions.
  size_t n_heads = heads->size();
  size_t keep_T = T;
  while (keep_T > 8 && n_heads * keep_T * (keep_T + 1) / 2 > lim.max_attention_cells) --keep_T;
  size_t keep_heads = n_heads;
  while (keep_heads > 1 && keep_heads * keep_T * (keep_T + 1) / 2 > lim.max_attention_cells) --keep_heads;
  std::string limit_note;
  if (keep_T < T || keep_heads < n_heads) {
    limit_note = r.name + " / " + name + ": attention patterns limited to the first " + std::to_string(keep_T) +
                 " of " + std::to_string(T) + " positions and " + std::to_string(keep_heads) + " of " +
                 std::to_string(n_heads) + " heads to keep the page small";
    if (notes) notes->push_back(limit_note);
  }
  json values = json::array(), order = json::array();
  for (size_t hi = 0; hi < keep_heads; ++hi) {
    const json& h = (*heads)[hi];
    std::string label = head_label(h);
    order.push_back(label);
    const json& pat = h["pattern"];
    for (size_t q = 0; q < std::min(keep_T, pat.size()); ++q) {
      const json& row = pat[q];
      for (size_t k = 0; k <= q && k < row.size(); ++k) {
        if (!row[k].is_number()) continue;
        values.push_back({{"h", label}, {"q", q}, {"k", k}, {"w", round_to(row[k].get<double>(), 3)}});
      }
    }
  }
  std::string tokens_text;
  if (auto toks = get(sample, "tokens"); toks && toks->is_array()) {
    for (size_t i = 0; i < std::min(keep_T, toks->size()); ++i) tokens_text += tok((*toks)[i]);
  }
  int cell = keep_T <= 48 ? 3 : 2;
  int columns = std::max(1, std::min<int>(r.shape.n_heads > 0 ? r.shape.n_heads : 8, 8));
  std::string what = name == "repeated_random" ? "a repeated random token sequence" : "real text";
  json spec = base_spec(r.name + ": attention patterns on " + what);
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"field", "h"}, {"type", "ordinal"}, {"sort", order}, {"title", nullptr},
                   {"header", {{"labelFontSize", 11}}}};
  spec["columns"] = columns;
  spec["spec"] = {{"width", static_cast<int>(keep_T) * cell},
                  {"height", static_cast<int>(keep_T) * cell},
                  {"mark", {{"type", "rect"}}},
                  {"encoding", {{"x", {{"field", "k"}, {"type", "ordinal"}, {"axis", nullptr}, {"title", "key"}}},
                                {"y", {{"field", "q"}, {"type", "ordinal"}, {"axis", nullptr}, {"title", "query"}}},
                                {"color", {{"field", "w"}, {"type", "quantitative"}, {"title", "attention"},
                                           {"scale", {{"scheme", "blues"}, {"domain", json::array({0, 1})}}}}},
                                {"tooltip", json::array({{{"field", "h"}}, {{"field", "q"}, {"title", "query pos"}},
                                                         {{"field", "k"}, {"title", "key pos"}}, {{"field", "w"}, {"format", ".3f"}}})}}}};
  std::string caption =
      "Attention pattern of each head (<code>attention_samples[name=" + name + "]</code>): row = query position, "
      "column = key position, causal cells only. ";
  if (name == "repeated_random")
    caption += "Tokens: a start token then random tokens repeated twice; induction heads show an off-diagonal stripe "
               "in the second half, previous-token heads the sub-diagonal. ";
  else if (!tokens_text.empty())
    caption += "Text: <q>" + html_escape(tokens_text.substr(0, 300)) + "</q>. ";
  size_t total_heads = static_cast<size_t>(std::max(0, r.shape.n_layers * r.shape.n_heads));
  if (n_heads < total_heads)
    caption += "Showing " + std::to_string(n_heads) + " of " + std::to_string(total_heads) +
               " heads: analysis.json keeps the top heads by previous-token, induction and duplicate score for large models. ";
  if (!limit_note.empty()) caption += "<em>Limited: " + html_escape(limit_note) + ".</em>";
  return make("attention-" + slug(name) + "-" + slug(r.name), r.name + ": attention on " + what, caption, spec);
}

std::optional<Figure> fig_attention_detail(const RunInputs& r, const json& sample, int layer, int head,
                                           const std::string& why) {
  auto heads = get(sample, "heads");
  auto toks = get(sample, "tokens");
  if (!heads || !toks || !heads->is_array() || !toks->is_array()) return std::nullopt;
  const json* pat = nullptr;
  for (auto& h : *heads)
    if (h.value("layer", -1) == layer && h.value("head", -1) == head) pat = get(h, "pattern");
  if (!pat || !pat->is_array() || pat->empty()) return std::nullopt;
  size_t T = std::min<size_t>({pat->size(), toks->size(), 64});  // ≤ 64 positions stay legible
  auto label = [&](size_t i) { return std::to_string(i) + " " + tok_visible((*toks)[i]); };
  json values = json::array(), order = json::array();
  for (size_t i = 0; i < T; ++i) order.push_back(label(i));
  for (size_t q = 0; q < T; ++q)
    for (size_t k = 0; k <= q && k < (*pat)[q].size(); ++k)
      if ((*pat)[q][k].is_number())
        values.push_back({{"q", label(q)}, {"k", label(k)}, {"w", round_to((*pat)[q][k].get<double>(), 3)}});
  std::string name = sample.value("name", "sample");
  std::string hl = head_label(layer, head);
  json spec = base_spec(r.name + " " + hl + " on " + (name == "text" ? "real text" : "the repeated random sequence"));
  spec["width"] = static_cast<int>(T) * 11;
  spec["height"] = static_cast<int>(T) * 11;
  spec["data"] = {{"values", values}};
  spec["mark"] = "rect";
  spec["encoding"] = {
      {"x", {{"field", "k"}, {"type", "ordinal"}, {"sort", order}, {"title", "key (source) token"}, {"axis", {{"labelFontSize", 8}, {"labelAngle", -90}}}}},
      {"y", {{"field", "q"}, {"type", "ordinal"}, {"sort", order}, {"title", "query (destination) token"}, {"axis", {{"labelFontSize", 8}}}}},
      {"color", {{"field", "w"}, {"type", "quantitative"}, {"title", "attention"}, {"scale", {{"scheme", "blues"}, {"domain", json::array({0, 1})}}}}},
      {"tooltip", json::array({{{"field", "q"}, {"title", "query"}}, {{"field", "k"}, {"title", "key"}}, {{"field", "w"}, {"format", ".3f"}}})}};
  std::string caption = "The pattern of " + hl + " (" + html_escape(why) + ") on the <code>" + html_escape(name) +
                        "</code> sample of <code>attention_samples</code>, tokens on both axes (· = space).";
  if (T < pat->size()) caption += " <em>Limited to the first " + std::to_string(T) + " of " + std::to_string(pat->size()) + " positions.</em>";
  return make("attention-detail-" + slug(name) + "-" + slug(hl) + "-" + slug(r.name), r.name + ": " + hl + " in detail", caption, spec);
}

std::optional<Figure> fig_head_scores(const RunInputs& r) {
  const std::pair<const char*, const char*> kinds[] = {
      {"prev_token_score", "previous token"}, {"induction_score", "induction"},
      {"duplicate_score", "duplicate token"}, {"prefix_matching_score", "prefix matching"},
      {"copying_score", "copying (−1..1)"}};
  json values = json::array();
  for (auto& h : heads_of(r))
    for (auto& [key, name] : kinds) {
      double v = num(h, key);
      if (!std::isnan(v))
        values.push_back({{"layer", h.value("layer", 0)}, {"head", h.value("head", 0)}, {"score", name}, {"value", round_to(v, 4)}});
    }
  if (values.empty()) return std::nullopt;
  bool text = r.shape.n_heads <= 12 && r.shape.n_layers <= 4;
  int cw = text ? 34 : 14;
  json spec = base_spec(r.name + ": head scores from attention patterns");
  spec["data"] = {{"values", values}};
  spec["columns"] = r.shape.n_heads > 12 ? 2 : 3;
  spec["concat"] = json::array();
  for (auto& [key, name] : kinds) {
    // Fractions share the fixed [0, 1] scale; the copying evaluator is on [-1, 1].
    bool signed_score = std::string(key) == "copying_score";
    json rect = {{"mark", "rect"},
                 {"encoding", {{"color", {{"field", "value"}, {"type", "quantitative"}, {"title", nullptr},
                                          {"scale", {{"scheme", signed_score ? "redblue" : "viridis"}, {"reverse", signed_score},
                                                     {"domain", signed_score ? json::array({-1, 1}) : json::array({0, 1})}}}}}}}};
    json layers = json::array({rect});
    if (text)
      layers.push_back({{"mark", {{"type", "text"}, {"fontSize", 9}}},
                        {"encoding", {{"text", {{"field", "value"}, {"type", "quantitative"}, {"format", ".2f"}}},
                                      {"color", {{"condition", {{"test", signed_score ? "abs(datum.value) < 0.6" : "datum.value > 0.5"}, {"value", "black"}}},
                                                 {"value", "white"}}}}}});
    spec["concat"].push_back({{"title", {{"text", name}, {"fontSize", 12}}},
                              {"transform", json::array({{{"filter", {{"field", "score"}, {"equal", name}}}}})},
                              {"width", cw * std::max(1, r.shape.n_heads)},
                              {"height", cw * std::max(1, r.shape.n_layers)},
                              {"encoding", {{"x", {{"field", "head"}, {"type", "ordinal"}}},
                                            {"y", {{"field", "layer"}, {"type", "ordinal"}}},
                                            {"tooltip", json::array({{{"field", "score"}}, {{"field", "layer"}}, {{"field", "head"}},
                                                                     {{"field", "value"}, {"format", ".3f"}}})}}},
                              {"layer", layers}});
  }
  spec["resolve"] = {{"scale", {{"color", "independent"}}}};
  return make("head-scores-" + slug(r.name), r.name + ": previous-token, induction and copying scores",
              "Per-head scores (<code>heads[]</code>): previous-token = mean attention i→i−1; induction = ARENA stripe on "
              "[BOS, r, r]; duplicate-token; Olsson prefix matching (fractions, scale 0..1); Olsson copying evaluator "
              "(−1..1, red = copying).",
              spec);
}

std::optional<Figure> fig_composition(const RunInputs& r, const FigureLimits& lim, std::vector<std::string>* notes) {
  auto comp = get(r.analysis, "composition");
  if (!comp) return std::nullopt;
  double baseline = num(get(*comp, "baseline") ? (*comp)["baseline"] : json(), "random_mean");
  int L = r.shape.n_layers, H = r.shape.n_heads;
  size_t pairs = 0;
  for (int l1 = 0; l1 < L; ++l1)
    for (int l2 = l1 + 1; l2 < L; ++l2) pairs += static_cast<size_t>(H) * H;
  std::vector<std::string> kinds = {"q", "k", "v"};
  std::string limit_note;
  if (pairs * 3 > lim.max_composition_cells) {
    kinds = {"k"};
    limit_note = r.name + ": only K-composition drawn (" + std::to_string(pairs) +
                 " head pairs per kind; Q and V are in analysis.json and the claims table)";
    if (notes) notes->push_back(limit_note);
  }
  json values = json::array(), src_order = json::array(), dst_order = json::array();
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      if (l < L - 1) src_order.push_back(head_label(l, h));
      if (l > 0) dst_order.push_back(head_label(l, h));
    }
  for (auto& kind : kinds) {
    auto m = get(*comp, kind.c_str());
    if (!m || !m->is_array()) continue;
    for (int l1 = 0; l1 < L && l1 < static_cast<int>(m->size()); ++l1)
      for (int h1 = 0; h1 < H; ++h1)
        for (int l2 = l1 + 1; l2 < L; ++l2)
          for (int h2 = 0; h2 < H; ++h2) {
            const json& v = (*m)[l1][h1][l2][h2];
            if (!v.is_number()) continue;
            values.push_back({{"kind", kind == "q" ? "Q-composition" : kind == "k" ? "K-composition" : "V-composition"},
                              {"earlier", head_label(l1, h1)}, {"later", head_label(l2, h2)},
                              {"score", round_to(v.get<double>(), 4)}});
          }
  }
  if (values.empty()) return std::nullopt;
  int cw = H <= 16 && L <= 2 ? 22 : 5;
  json color = {{"field", "score"}, {"type", "quantitative"}, {"title", "score"},
                {"scale", {{"scheme", "redblue"}, {"reverse", true}}}};
  if (!std::isnan(baseline)) {
    // Symmetric about the baseline so equal distances above and below get equal colour strength.
    double spread = 1e-9;
    for (auto& v : values) spread = std::max(spread, std::abs(v["score"].get<double>() - baseline));
    color["scale"]["domain"] = json::array({round_to(baseline - spread, 5), round_to(baseline + spread, 5)});
    color["scale"]["domainMid"] = baseline;
  }
  json spec = base_spec(r.name + ": Q/K/V composition between heads");
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"column", {{"field", "kind"}, {"type", "nominal"}, {"title", nullptr},
                               {"sort", json::array({"Q-composition", "K-composition", "V-composition"})}}}};
  spec["spec"] = {{"width", cw * static_cast<int>(dst_order.size())},
                  {"height", cw * static_cast<int>(src_order.size())},
                  {"mark", "rect"},
                  {"encoding", {{"x", {{"field", "later"}, {"type", "ordinal"}, {"sort", dst_order}, {"title", "later head"},
                                       {"axis", cw < 10 ? json(nullptr) : json{{"labelFontSize", 9}}}}},
                                {"y", {{"field", "earlier"}, {"type", "ordinal"}, {"sort", src_order}, {"title", "earlier head"},
                                       {"axis", cw < 10 ? json(nullptr) : json{{"labelFontSize", 9}}}}},
                                {"color", color},
                                {"tooltip", json::array({{{"field", "kind"}}, {{"field", "earlier"}}, {{"field", "later"}},
                                                         {{"field", "score"}, {"format", ".4f"}}})}}}};
  std::string caption =
      "‖A·B‖<sub>F</sub>/(‖A‖<sub>F</sub>‖B‖<sub>F</sub>) for every (earlier, later) head pair "
      "(<code>composition.q/k/v</code>, the true norm of the product per the paper's erratum), on a diverging scale "
      "centred at the random baseline " + fmt(baseline, 4) + " (<code>composition.baseline.random_mean</code>): "
      "red above, blue below.";
  if (!limit_note.empty()) caption += " <em>Limited: " + html_escape(limit_note) + ".</em>";
  return make("composition-" + slug(r.name), r.name + ": Q/K/V composition", caption, spec);
}

std::optional<Figure> fig_kcomp_scatter(const RunInputs& r) {
  json values = json::array();
  for (auto& h : heads_of(r)) {
    double x = num(h, "kcomp_positivity"), y = num(h, "ov_positivity");
    if (std::isnan(x) || std::isnan(y)) continue;
    bool ind = has_label(h, "induction");
    values.push_back({{"head", head_label(h)}, {"kcomp", round_to(x, 4)}, {"ov", round_to(y, 4)},
                      {"kind", ind ? "induction head" : "other head"},
                      {"induction_score", round_to(num(h, "induction_score"), 4)}});
  }
  if (values.empty()) return std::nullopt;
  json enc = {{"x", {{"field", "kcomp"}, {"type", "quantitative"}, {"scale", {{"domain", json::array({-1, 1})}}},
                     {"title", "K-composition positivity (QK via previous-token head)"}}},
              {"y", {{"field", "ov"}, {"type", "quantitative"}, {"scale", {{"domain", json::array({-1, 1})}}},
                     {"title", "OV positivity (copying)"}}}};
  json spec = base_spec(r.name + ": induction heads sit in the top-right corner");
  spec["width"] = 380;
  spec["height"] = 340;
  spec["data"] = {{"values", values}};
  json points = {{"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
                 {"encoding", enc}};
  points["encoding"]["color"] = {{"field", "kind"}, {"type", "nominal"}, {"title", nullptr},
                                 {"scale", {{"domain", json::array({"induction head", "other head"})},
                                            {"range", json::array({"#d35400", "#7f8c8d"})}}}};
  points["encoding"]["tooltip"] = json::array({{{"field", "head"}}, {{"field", "kcomp"}, {"format", ".3f"}},
                                               {{"field", "ov"}, {"format", ".3f"}}, {{"field", "induction_score"}}});
  json labels = {{"transform", json::array({{{"filter", "datum.kind == 'induction head'"}}})},
                 {"mark", {{"type", "text"}, {"dx", 8}, {"align", "left"}, {"fontSize", 11}}},
                 {"encoding", enc}};
  labels["encoding"]["text"] = {{"field", "head"}};
  json zero_x = {{"data", {{"values", json::array({json::object()})}}}, {"mark", {{"type", "rule"}, {"color", "#bbb"}}},
                 {"encoding", {{"x", {{"datum", 0}, {"type", "quantitative"}}}}}};
  json zero_y = {{"data", {{"values", json::array({json::object()})}}}, {"mark", {{"type", "rule"}, {"color", "#bbb"}}},
                 {"encoding", {{"y", {{"datum", 0}, {"type", "quantitative"}}}}}};
  spec["layer"] = json::array({zero_x, zero_y, points, labels});
  return make("kcomp-scatter-" + slug(r.name), r.name + ": K-composition positivity against OV positivity",
              "Each head of layer ≥ 1: x = eigenvalue positivity of the K-composition term "
              "W<sub>E</sub>·QK<sup>h</sup>·(OV<sup>prev</sup>)<sup>T</sup>·W<sub>E</sub><sup>T</sup> with the strongest earlier "
              "previous-token head (<code>heads[].kcomp_positivity</code>), y = OV positivity. Heads labelled "
              "<q>induction</q> in analysis.json are named.",
              spec);
}

std::optional<Figure> fig_term_importance(const RunInputs& r) {
  auto ti = get(r.analysis, "term_importance");
  if (!ti) return std::nullopt;
  auto orders = get(*ti, "orders");
  if (!orders || !orders->is_array() || orders->empty()) return std::nullopt;
  json values = json::array(), order = json::array();
  for (auto& o : *orders) {
    double v = num(o, "marginal_nats");
    if (std::isnan(v)) continue;
    std::string label = o.value("label", "order " + std::to_string(o.value("order", 0)));
    order.push_back(label);
    values.push_back({{"term", label}, {"order", o.value("order", 0)}, {"nats", round_to(v, 4)}, {"loss", round_to(num(o, "loss"), 4)}});
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec(r.name + ": marginal loss reduction by path order");
  spec["width"] = 360;
  spec["height"] = 240;
  spec["data"] = {{"values", values}};
  json bars = {{"mark", "bar"},
               {"encoding", {{"x", {{"field", "term"}, {"type", "nominal"}, {"sort", order}, {"title", nullptr}, {"axis", {{"labelAngle", 0}}}}},
                             {"y", {{"field", "nats"}, {"type", "quantitative"}, {"title", "marginal loss reduction (nats)"}}},
                             {"color", {{"field", "term"}, {"type", "nominal"}, {"sort", order}, {"legend", nullptr}}},
                             {"tooltip", json::array({{{"field", "term"}}, {{"field", "nats"}, {"format", ".4f"}}, {{"field", "loss"}, {"format", ".4f"}}})}}}};
  json text = {{"mark", {{"type", "text"}, {"dy", -7}}},
               {"encoding", {{"x", {{"field", "term"}, {"type", "nominal"}, {"sort", order}}},
                             {"y", {{"field", "nats"}, {"type", "quantitative"}}},
                             {"text", {{"field", "nats"}, {"type", "quantitative"}, {"format", ".2f"}}}}}};
  spec["layer"] = json::array({bars, text});
  return make("term-importance-" + slug(r.name), r.name + ": term importance",
              "The paper's iterated frozen-pattern ablation (<code>term_importance.orders</code>): loss reduction of the "
              "direct path over uniform predictions (ln V = " + fmt(num(*ti, "uniform_loss"), 3) + "), then of the "
              "individual head terms, then of virtual heads. Paper (2L): about 1.8 / 5.2 / 0.3 nats.",
              spec);
}

std::optional<Figure> fig_head_ablation(const RunInputs& r) {
  auto ti = get(r.analysis, "term_importance");
  if (!ti) return std::nullopt;
  auto per = get(*ti, "per_head");
  if (!per || !per->is_array() || per->empty()) return std::nullopt;
  json values = json::array();
  for (auto& p : *per) {
    double d = num(p, "loss_delta");
    if (std::isnan(d)) continue;
    values.push_back({{"head", head_label(p)}, {"layer", "layer " + std::to_string(p.value("layer", 0))},
                      {"metric", "loss increase"}, {"value", round_to(d, 5)}});
    double ic = num(p, "icl_delta");
    if (!std::isnan(ic))
      values.push_back({{"head", head_label(p)}, {"layer", "layer " + std::to_string(p.value("layer", 0))},
                        {"metric", "ICL score change"}, {"value", round_to(ic, 5)}});
  }
  if (values.empty()) return std::nullopt;
  json spec = base_spec(r.name + ": pattern-preserving ablation of each head");
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"row", {{"field", "metric"}, {"type", "nominal"}, {"title", nullptr}}}};
  spec["resolve"] = {{"scale", {{"y", "independent"}}}};
  spec["spec"] = {{"width", std::max(240, 22 * r.shape.n_heads * std::max(1, r.shape.n_layers))},
                  {"height", 140},
                  {"mark", "bar"},
                  {"encoding", {{"x", {{"field", "head"}, {"type", "nominal"}, {"sort", head_order(r)}, {"title", "ablated head"}}},
                                {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", "nats"}}},
                                {"color", {{"field", "layer"}, {"type", "nominal"}}},
                                {"tooltip", json::array({{{"field", "head"}}, {{"field", "metric"}}, {{"field", "value"}, {"format", ".4f"}}})}}}};
  return make("head-ablation-" + slug(r.name), r.name + ": per-head ablation",
              "Each head's output zeroed with every attention pattern frozen (<code>term_importance.per_head</code>): "
              "the loss increase, and the change of the ICL score (positive = less in-context learning).",
              spec);
}

std::optional<Figure> fig_phase_change(const RunInputs& r) {
  auto snaps = get(r.phase, "snapshots");
  if (!snaps || !snaps->is_array() || snaps->empty()) return std::nullopt;
  json scores = json::array(), icl = json::array();
  for (auto& s : *snaps) {
    int step = s.value("step", 0);
    for (auto [key, name] : {std::pair{"best_induction", "best induction score"}, std::pair{"best_prev_token", "best previous-token score"}}) {
      auto b = get(s, key);
      if (b && !std::isnan(num(*b, "score")))
        scores.push_back({{"step", step}, {"series", name}, {"value", round_to(num(*b, "score"), 4)}, {"head", head_label(*b)}});
    }
    if (auto i = get(s, "icl"); i && !std::isnan(num(*i, "icl_score")))
      icl.push_back({{"step", step}, {"series", "ICL score (nats)"}, {"value", round_to(num(*i, "icl_score"), 4)}});
  }
  if (scores.empty()) return std::nullopt;
  json pc = get(r.phase, "phase_change") ? r.phase["phase_change"] : json::object();
  json rule_data = json::array();
  if (get(pc, "step")) rule_data.push_back({{"step", pc["step"]}, {"label", "induction heads form (step " + pc["step"].dump() + ")"}});
  double threshold = num(pc, "threshold");
  json x = {{"field", "step"}, {"type", "quantitative"}, {"scale", {{"type", "symlog"}}}, {"title", "training step"}};
  auto rule_layer = [&]() {
    return json{{"data", {{"values", rule_data}}},
                {"mark", {{"type", "rule"}, {"color", "#d35400"}, {"strokeDash", json::array({5, 3})}, {"strokeWidth", 2}}},
                {"encoding", {{"x", {{"field", "step"}, {"type", "quantitative"}}}, {"tooltip", {{"field", "label"}}}}}};
  };
  json top = {{"width", 560}, {"height", 220}, {"layer", json::array()}};
  top["layer"].push_back({{"data", {{"values", scores}}},
                          {"mark", {{"type", "line"}, {"point", true}}},
                          {"encoding", {{"x", x},
                                        {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", "score"}}},
                                        {"color", {{"field", "series"}, {"type", "nominal"}, {"title", nullptr}}},
                                        {"tooltip", json::array({{{"field", "step"}}, {{"field", "series"}}, {{"field", "head"}}, {{"field", "value"}}})}}}});
  if (!std::isnan(threshold))
    top["layer"].push_back({{"data", {{"values", json::array({{{"t", threshold}}})}}},
                            {"mark", {{"type", "rule"}, {"color", "#999"}, {"strokeDash", json::array({2, 2})}}},
                            {"encoding", {{"y", {{"field", "t"}, {"type", "quantitative"}}}}}});
  if (!rule_data.empty()) {
    top["layer"].push_back(rule_layer());
    top["layer"].push_back({{"data", {{"values", rule_data}}},
                            {"mark", {{"type", "text"}, {"align", "left"}, {"dx", 4}, {"y", 8}, {"color", "#d35400"}}},
                            {"encoding", {{"x", {{"field", "step"}, {"type", "quantitative"}}}, {"text", {{"field", "label"}}}}}});
  }
  json spec = base_spec(r.name + ": phase change");
  spec["vconcat"] = json::array({top});
  if (!icl.empty()) {
    json bottom = {{"width", 560}, {"height", 160}, {"layer", json::array()}};
    bottom["layer"].push_back({{"data", {{"values", icl}}},
                               {"mark", {{"type", "line"}, {"point", true}, {"color", "#2e86c1"}}},
                               {"encoding", {{"x", x}, {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", "ICL score (nats)"}}},
                                             {"tooltip", json::array({{{"field", "step"}}, {{"field", "value"}}})}}}});
    if (!rule_data.empty()) bottom["layer"].push_back(rule_layer());
    spec["vconcat"].push_back(bottom);
  }
  std::string caption =
      "Head scores of every snapshot (<code>phase_change.json</code>): best induction and previous-token scores, and the ICL "
      "score. The dashed grey line is the induction threshold (" + fmt(threshold, 2) + "); the orange rule marks the "
      "first snapshot whose best induction score crosses it";
  caption += get(pc, "step") ? " (step " + pc["step"].dump() + (get(pc, "tokens") ? ", " + fmt_int(pc["tokens"].get<long long>()) + " tokens" : std::string()) + ")." : " (not crossed in these snapshots).";
  return make("phase-change-" + slug(r.name), r.name + ": phase change", caption, spec);
}

}  // namespace circuitlab::reports
