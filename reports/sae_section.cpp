// The SAE section (see sae_section.h): eval table, density histogram and the feature browser's
// embedded data. Values are copied from cfg.json / eval.json / features.json.
#include "reports/sae_section.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "reports/figures.h"
#include "reports/json_access.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;

std::string esc(const std::string& s) { return html_escape(s); }

std::string pct(double v) { return std::isnan(v) ? fmt(v) : fmt(100 * v, 2) + "%"; }

std::string base_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto slash = dir.find_last_of('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

std::string row(const std::string& label, const std::string& value, const std::string& source) {
  return "<tr><th>" + label + "</th><td class=\"num\">" + value + "</td><td class=\"src\"><code>" + source + "</code></td></tr>";
}

// The eval table: what `circuitlab sae eval` measured (eval.json) and what the SAE is (cfg.json).
std::string eval_table(const RunInputs& r) {
  const SaeInputs& s = *r.sae;
  const json& e = s.eval;
  std::string arch = esc(s.architecture) + (s.k >= 0 ? " (k = " + std::to_string(s.k) + ")" : "");
  std::string hook = esc(s.hook_name.empty() ? std::string("?") : s.hook_name) +
                     (s.hook_head_index >= 0 ? " head " + std::to_string(s.hook_head_index) : "");
  std::string h = "<table class=\"data sae-eval\"><thead><tr><th>" + esc(r.name) + " SAE</th><th>value</th><th>from</th></tr></thead><tbody>";
  h += row("hook", hook, "cfg.json");
  h += row("architecture", arch, "cfg.json");
  h += row("latents × d_in", fmt_int(s.d_sae) + " × " + fmt_int(s.d_in), "cfg.json");
  h += row("L0 (active latents per token)", fmt(num(e, "l0"), 2), "eval.json l0");
  h += row("explained variance", fmt(num(e, "explained_variance"), 4), "eval.json explained_variance");
  if (!std::isnan(num(e, "cosine_similarity"))) h += row("cosine similarity", fmt(num(e, "cosine_similarity"), 4), "cosine_similarity");
  h += row("CE loss score", fmt(num(e, "ce_loss_score"), 4), "ce_loss_score");
  if (!std::isnan(num(e, "ce_loss_clean")))
    h += row("CE loss: clean / with SAE / zero-ablated", fmt(num(e, "ce_loss_clean"), 4) + " / " + fmt(num(e, "ce_loss_with_sae"), 4) + " / " +
                                                             fmt(num(e, "ce_loss_with_ablation"), 4) + " nats",
             "ce_loss_clean, _with_sae, _with_ablation");
  h += row("KL score", fmt(num(e, "kl_div_score"), 4), "kl_div_score");
  if (!std::isnan(num(e, "kl_div_with_sae")))
    h += row("KL with SAE / zero-ablated", fmt(num(e, "kl_div_with_sae"), 4) + " / " + fmt(num(e, "kl_div_with_ablation"), 4) + " nats",
             "kl_div_with_sae, kl_div_with_ablation");
  h += row("dead latents", pct(num(e, "frac_dead")), "frac_dead");
  h += row("dense latents (firing on &gt; 1% / &gt; 10% of tokens)", pct(num(e, "frac_dense_1pct")) + " / " + pct(num(e, "frac_dense_10pct")),
           "frac_dense_1pct, frac_dense_10pct");
  h += row("tokens evaluated", fmt_int(int_or(e, "tokens", -1)), "eval.json tokens");
  if (s.features.is_object()) {
    const json& f = s.features;
    h += row("tokens scanned for features", fmt_int(int_or(f["data"], "tokens", -1)), "features.json data.tokens");
    if (auto sum = get(f, "summary")) {
      h += row("dead latents in that scan", fmt_int(int_or(*sum, "dead", -1)) + " of " + fmt_int(s.d_sae), "summary.dead");
      h += row("mean L0 in that scan", fmt(num(*sum, "mean_l0"), 2), "summary.mean_l0");
    }
    if (auto lp = get(f, "logit_path"); lp && lp->is_string()) h += row("logit effects through", esc(lp->get<std::string>()), "logit_path");
  }
  return h + "</tbody></table>";
}

// Token strings of the embedded data, each stored once (examples refer to them by index).
struct StringTable {
  std::map<std::string, int> index;
  json strs = json::array();
  int id(const std::string& t) {
    auto [it, added] = index.emplace(t, static_cast<int>(index.size()));
    if (added) strs.push_back(t);
    return it->second;
  }
};

// One example, trimmed to `before`/`after` tokens around its peak; token strings as indices
// into the shared table.
json compact_example(const json& ex, const SaeEmbedLimits& lim, StringTable& table) {
  const json& ts = ex["strs"];
  const json& as = ex["acts"];
  const int n = static_cast<int>(ts.size()), peak = ex["peak"].get<int>();
  const int lo = std::max(0, peak - lim.before), hi = std::min(n, peak + lim.after + 1);
  json t = json::array(), v = json::array();
  for (int i = lo; i < hi; ++i) {
    t.push_back(table.id(ts[i].get<std::string>()));
    v.push_back(as[i].is_number() ? json(sig4(as[i].get<double>())) : json(nullptr));
  }
  json out = {{"a", sig4(ex["act"].get<double>())}, {"p", peak - lo}, {"t", t}, {"v", v}};
  if (auto q = ex.find("quantile"); q != ex.end() && q->is_number()) out["q"] = q->get<double>();
  return out;
}

// One latent of the browser: stats, histogram, trimmed examples, logit effects, neighbours, and
// the peak tokens of all its top examples (what the search matches besides label and promoted).
json compact_latent(const json& l, size_t n_top, const SaeEmbedLimits& lim, StringTable& table) {
  json c = {{"i", l["index"]}, {"d", sig4(l["density"].get<double>())}, {"n", l["fired"]}, {"mx", sig4(l["max"].get<double>())},
            {"mn", l.contains("mean") && l["mean"].is_number() ? json(sig4(l["mean"].get<double>())) : json(nullptr)},
            {"l", l["label"]}};
  if (auto h = get(l, "hist")) c["h"] = {{"f", (*h)["first"]}, {"c", (*h)["counts"]}};
  json top = json::array(), peaks = json::array(), quant = json::array();
  std::set<int> seen;
  const json& all_top = l["top"];
  for (size_t k = 0; k < all_top.size(); ++k) {
    const json& ex = all_top[k];
    int p = table.id(ex["strs"][ex["peak"].get<size_t>()].get<std::string>());
    if (seen.insert(p).second) peaks.push_back(p);
    if (k < n_top) top.push_back(compact_example(ex, lim, table));
  }
  if (auto q = get(l, "quantiles"))
    for (size_t k = 0; k < std::min(lim.max_quantiles, q->size()); ++k) quant.push_back(compact_example((*q)[k], lim, table));
  c["top"] = top;
  c["ntop"] = all_top.size();
  c["pk"] = peaks;
  c["q"] = quant;
  for (auto [key, out] : {std::pair{"promoted", "pro"}, std::pair{"suppressed", "sup"}}) {
    json toks = json::array();
    if (auto t = get(l, key))
      for (size_t k = 0; k < std::min(lim.max_logit_tokens, t->size()); ++k)
        toks.push_back({table.id((*t)[k]["str"].get<std::string>()), sig4((*t)[k]["value"].get<double>())});
    c[out] = toks;
  }
  json nb = json::array();
  if (auto n = get(l, "neighbors"))
    for (size_t k = 0; k < std::min(lim.max_neighbors, n->size()); ++k)
      nb.push_back({(*n)[k]["index"], sig4((*n)[k]["cosine"].get<double>())});
  c["nb"] = nb;
  return c;
}

}  // namespace

double sig4(double v) {
  if (!std::isfinite(v) || v == 0) return v;
  const double p = std::pow(10.0, 3 - static_cast<int>(std::floor(std::log10(std::fabs(v)))));
  return std::round(v * p) / p;
}

std::optional<Figure> fig_sae_density(const RunInputs& r) {
  if (!r.sae || !r.sae->features.is_object()) return std::nullopt;
  const json& dh = r.sae->features["density_histogram"];
  const double lo = dh["log10_lo"].get<double>(), width = dh["width"].get<double>();
  json values = json::array();
  const json& counts = dh["counts"];
  for (size_t b = 0; b < counts.size(); ++b) {
    double a = lo + b * width;
    values.push_back({{"lo", round_to(a, 6)}, {"hi", round_to(a + width, 6)}, {"latents", counts[b]}});
  }
  if (values.empty()) return std::nullopt;
  const long long dead = dh["dead"].get<long long>();
  json spec = base_spec(r.name + " SAE: firing density of its latents");
  spec["width"] = 520;
  spec["height"] = 220;
  spec["data"] = {{"values", values}};
  spec["mark"] = {{"type", "rect"}, {"color", "#2e86c1"}, {"stroke", "white"}, {"strokeWidth", 0.5}};
  spec["encoding"] = {
      {"x", {{"field", "lo"}, {"type", "quantitative"}, {"title", "log10 firing density (fraction of tokens a latent fires on)"}}},
      {"x2", {{"field", "hi"}}},
      {"y", {{"field", "latents"}, {"type", "quantitative"}, {"title", "latents"}}},
      {"tooltip", json::array({{{"field", "lo"}, {"title", "log10 density from"}, {"format", ".2f"}},
                               {{"field", "hi"}, {"title", "to"}, {"format", ".2f"}}, {{"field", "latents"}}})}};
  const std::string tokens = fmt_int(int_or(r.sae->features["data"], "tokens", -1));
  return Figure{"sae-density-" + slug(r.name), r.name + " SAE: firing density",
                "Latents of the SAE at <code>" + esc(r.sae->hook_name) + "</code> by the fraction of " + tokens +
                    " scanned tokens on which they fire (<code>features.json density_histogram</code>); " + fmt_int(dead) +
                    " dead latents (never fired) are not drawn. Dense latents sit at the right, rare ones at the left.",
                spec};
}

json feature_browser_data(const RunInputs& r, const SaeEmbedLimits& lim, std::vector<std::string>* notes) {
  if (!r.sae || !r.sae->features.is_object()) return nullptr;
  const json& f = r.sae->features;
  const json& latents = f["latents"];
  // Examples per latent from the token budget, so the page stays openable at any d_sae.
  const size_t per_example = static_cast<size_t>(lim.before + 1 + lim.after);
  const size_t fit = lim.max_context_tokens / std::max<size_t>(1, latents.size() * per_example);
  const size_t n_top = std::max<size_t>(1, std::min(lim.max_top, fit));
  StringTable table;
  json out = json::array();
  size_t max_top = 0, max_ctx = 0;
  for (const json& l : latents) {
    out.push_back(compact_latent(l, n_top, lim, table));
    max_top = std::max(max_top, l["top"].size());
    for (const json& ex : l["top"]) max_ctx = std::max(max_ctx, ex["strs"].size());
  }
  if (notes && (max_top > n_top || max_ctx > per_example))
    notes->push_back(r.name + " SAE: the feature browser embeds the first " + std::to_string(n_top) + " of up to " +
                     std::to_string(max_top) + " top examples per latent, each cut to " + std::to_string(lim.before) +
                     " tokens before and " + std::to_string(lim.after) + " after its peak, activations to 4 significant digits (" +
                     r.sae->features_path + " holds them all)");
  json bins = f.contains("histogram_bins") ? f["histogram_bins"] : json(nullptr);
  return {{"run", r.name}, {"sae", base_name(r.sae->dir)}, {"hook", r.sae->hook_name}, {"d_sae", r.sae->d_sae},
          {"tokens", f["data"]["tokens"]}, {"logit_path", f.value("logit_path", json(nullptr))}, {"bins", bins},
          {"top_embedded", n_top}, {"strs", table.strs}, {"latents", out}};
}

Section sae_section(const RunInputs& r, const SaeEmbedLimits& lim, std::vector<std::string>* notes) {
  const std::string id = "sae-" + slug(r.name);
  Section s{id, "SAE of " + r.name + ": features at " + r.sae->hook_name, {}};
  s.add_html("<p>A sparse autoencoder trained on <code>" + esc(r.sae->hook_name) + "</code> of " + esc(r.name) + " (<code>" +
             esc(r.sae->dir) + "</code>): how well it reconstructs the activations (<code>eval.json</code>) and what its latents "
             "respond to (<code>features.json</code>).</p>");
  s.add_html(eval_table(r));
  if (auto fig = fig_sae_density(r)) s.add_figure(*fig);
  json data = feature_browser_data(r, lim, notes);
  if (data.is_null()) {
    s.add_html("<p class=\"note\">No <code>features.json</code> in <code>" + esc(r.sae->dir) +
               "</code>: no feature browser (write it with <code>circuitlab sae features --sae " + esc(r.sae->dir) +
               " --model MODEL --data SHARDS --out " + esc(r.sae->dir) + "/features.json</code>).</p>");
    return s;
  }
  const std::string data_id = id + "-data";
  s.add_html("<h3>Feature browser</h3><p class=\"stats\">Search by label, by the tokens a feature peaks on, or by the tokens it "
             "promotes; click a feature for its page. Token backgrounds show the latent's activation (darker is stronger), the "
             "peak token is outlined; hover a token for its value.</p>"
             "<div class=\"sae-browser\" id=\"" + id + "-browser\" data-data=\"" + data_id + "\">"
             "<div class=\"sae-side\"><input type=\"search\" class=\"sae-search\" placeholder=\"search features\" aria-label=\"search "
             "features of " + esc(r.name) + "\"><div class=\"sae-count\"></div><ol class=\"sae-list\"></ol></div>"
             "<div class=\"sae-page\"><p class=\"note\">The feature browser needs JavaScript.</p></div></div>"
             "<script type=\"application/json\" id=\"" + data_id + "\">" + script_json(data) + "</script>");
  return s;
}

const char* sae_section_css() {
  return R"CSS(
table.sae-eval td.src{font-size:11px;color:#666} table.sae-eval th{white-space:nowrap}
.sae-browser{display:flex;gap:16px;align-items:flex-start;background:#fff;border:1px solid #ddd;border-radius:4px;padding:12px}
.sae-side{width:340px;flex:none} .sae-search{width:100%;box-sizing:border-box;padding:5px 7px;font-size:14px}
.sae-count{font-size:12px;color:#555;margin:4px 0} .sae-list{list-style:none;margin:0;padding:0;max-height:640px;overflow-y:auto;font-size:13px}
.sae-list li{padding:2px 4px;cursor:pointer;border-bottom:1px solid #f0f0f0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.sae-list li:hover,.sae-list li.sel{background:#eef2f7} .sae-list small{color:#777}
.sae-page{flex:1;min-width:0;font-size:13px} .sae-page h3{margin:0 0 4px 0}
.sae-ex{font-family:Menlo,Consolas,monospace;font-size:12px;margin:3px 0;line-height:1.9}
.sae-ex .act{display:inline-block;min-width:96px;color:#555;text-align:right;margin-right:8px;white-space:nowrap}
.sae-tok{white-space:pre;border-radius:2px;padding:1px 0}
.sae-tok.peak{outline:2px solid #c0392b;outline-offset:0}
.sae-cols{display:flex;gap:24px;flex-wrap:wrap} .sae-nb{margin:2px 4px 2px 0;cursor:pointer}
)CSS";
}

}  // namespace circuitlab::reports
