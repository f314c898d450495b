// Report assembly: sections in the paper's order, HTML tables, the self-contained page and
// the writer of index.html + svg/ (see report.h). Figures come from figures.cpp, claims from
// claims.cpp; numbers are copied from the run files, never recomputed.
#include "reports/report.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "reports/figures.h"
#include "reports/js_bundle.h"
#include "reports/json_access.h"
#include "reports/sae_section.h"

namespace circuitlab::reports {

namespace {

using nlohmann::json;

std::string esc(const std::string& s) { return html_escape(s); }

std::vector<std::string> list_files(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    ::closedir(d);
  }
  return out;
}

std::string td(const std::string& s, const char* cls = nullptr) {
  return cls ? "<td class=\"" + std::string(cls) + "\">" + s + "</td>" : "<td>" + s + "</td>";
}

std::string tok_html(const json& t) { return "<span class=\"tok\">" + esc(tok_visible(t)) + "</span>"; }

std::string model_cards(const std::vector<const RunInputs*>& all) {
  std::string h = "<table class=\"data cards\"><thead><tr><th></th>";
  for (auto* r : all) h += "<th>" + esc(r->name) + "</th>";
  h += "</tr></thead><tbody>";
  auto row = [&](const std::string& label, auto fn) {
    h += "<tr><th>" + label + "</th>";
    for (auto* r : all) h += td(fn(*r), "num");
    h += "</tr>";
  };
  row("family", [](const RunInputs& r) {
    if (r.shape.gpt2) return std::string("GPT-2 (HF)");
    return std::string(r.model_config.value("attn_only", json(true)) == json(false) ? "with MLPs" : "attention-only");
  });
  row("layers", [](const RunInputs& r) { return std::to_string(r.shape.n_layers); });
  row("heads / layer", [](const RunInputs& r) { return std::to_string(r.shape.n_heads); });
  row("d_model", [](const RunInputs& r) { return std::to_string(r.shape.d_model); });
  row("d_head", [](const RunInputs& r) { return std::to_string(r.shape.d_head); });
  row("n_ctx", [](const RunInputs& r) { return std::to_string(r.shape.n_ctx); });
  row("d_vocab", [](const RunInputs& r) {
    std::string s = fmt_int(r.shape.d_vocab);
    if (auto v = get(r.analysis, "vocab"); v && v->value("compact", false)) s += " (compact)";
    return s;
  });
  row("LayerNorm", [](const RunInputs& r) { return esc(r.shape.normalization); });
  row("positions", [](const RunInputs& r) { return esc(r.shape.positional); });
  row("parameters", [](const RunInputs& r) { return fmt_int(r.n_params); });
  row("steps", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "step");
    return m ? fmt_int(m->value("step", -1LL)) : fmt_int(-1);
  });
  row("tokens trained", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "tokens");
    return m ? fmt_int(static_cast<long long>(num(*m, "tokens"))) : fmt_int(-1);
  });
  row("final train loss", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "train_loss");
    return m ? fmt(num(*m, "train_loss"), 4) : fmt(kNaN);
  });
  row("final val loss", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "val_loss");
    return m ? fmt(num(*m, "val_loss"), 4) : fmt(kNaN);
  });
  // Compact-vocabulary models: their "other" predictions scored over the full GPT-2 vocabulary
  // (train/trainer.cpp), so models with different vocabularies compare.
  row("final val loss, full GPT-2 vocabulary", [](const RunInputs& r) {
    if (const json* m = last_with(r.metrics, "val_loss_full_vocab")) return fmt(num(*m, "val_loss_full_vocab"), 4);
    const json* m = last_with(r.metrics, "val_loss");
    return m ? fmt(num(*m, "val_loss"), 4) : fmt(kNaN);
  });
  row("val tokens inside the vocabulary", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "val_vocab_coverage");
    return m ? fmt(100 * num(*m, "val_vocab_coverage"), 1) + "%" : std::string("100%");
  });
  row("analysis loss (full model)", [](const RunInputs& r) {
    auto ti = get(r.analysis, "term_importance");
    return ti ? fmt(num(*ti, "full_loss"), 4) : fmt(kNaN);
  });
  row("ICL score", [](const RunInputs& r) {
    auto icl = get(r.analysis, "icl");
    return icl ? fmt(num(*icl, "icl_score"), 3) : fmt(kNaN);
  });
  row("analysed", [](const RunInputs& r) {
    std::string when = r.analysis.value("created_utc", json("")).is_string() ? r.analysis.value("created_utc", "") : "";
    auto data = get(r.analysis, "data_dir");
    return esc(when) + (data && data->is_string() ? "<br><small>data: " + esc(data->get<std::string>()) + "</small>" : "<br><small>without data</small>");
  });
  row("training time", [](const RunInputs& r) {
    const json* m = last_with(r.metrics, "elapsed_s");
    return m ? fmt(num(*m, "elapsed_s"), 0) + " s" : fmt(kNaN);
  });
  h += "</tbody></table>";
  return h;
}

std::string bigram_table(const RunInputs& r, size_t max_rows, size_t max_k) {
  auto b = get(r.analysis, "bigram");
  if (!b) return "";
  auto rows = get(*b, "rows");
  if (!rows || !rows->is_array() || rows->empty()) return "";
  std::string src = b->value("source", "");
  std::string h = "<h4>" + esc(r.name) + ": " + (src == "zero_layer_model" ? "the model's bigram table" : "direct path W<sub>E</sub>·W<sub>U</sub>") +
                  " against the corpus</h4><p class=\"stats\">top-1 agreement " + fmt(num(*b, "top1_agreement"), 3) +
                  ", KL(corpus‖model) " + fmt(num(*b, "kl_corpus_model"), 3) + " nats over " +
                  fmt_int(int_or(*b, "n_sources_compared", -1)) +
                  " sources; first " + std::to_string(std::min(max_rows, rows->size())) + " of " + std::to_string(rows->size()) +
                  " rows shown.</p><table class=\"data bigram\"><thead><tr><th>token</th><th>corpus count</th><th>model top next tokens (p)</th><th>corpus top next tokens (p)</th></tr></thead><tbody>";
  for (size_t i = 0; i < std::min(max_rows, rows->size()); ++i) {
    const json& row = (*rows)[i];
    std::string model, corpus;
    if (auto mt = get(row, "model_top"))
      for (size_t k = 0; k < std::min(max_k, mt->size()); ++k)
        model += tok_html((*mt)[k]["token"]) + " <small>" + fmt(std::exp(num((*mt)[k], "logprob")), 3) + "</small> ";
    if (auto ct = get(row, "corpus_top"))
      for (size_t k = 0; k < std::min(max_k, ct->size()); ++k)
        corpus += tok_html((*ct)[k]["token"]) + " <small>" + fmt(num((*ct)[k], "prob"), 3) + "</small> ";
    long long count = int_or(row, "corpus_count", -1);
    h += "<tr>" + td(tok_html(row.value("token", json()))) + td(fmt_int(count), "num") + td(model) +
         td(corpus.empty() ? "—" : corpus) + "</tr>";
  }
  h += "</tbody></table>";
  return h;
}

std::string skip_trigram_tables(const RunInputs& r, size_t max_entries, size_t max_k) {
  auto st = get(r.analysis, "skip_trigrams");
  if (!st) return "";
  std::string h;
  if (auto heads = get(*st, "heads"); heads && heads->is_array()) {
    h += "<h4>" + esc(r.name) + ": skip-trigrams per head</h4><p class=\"stats\">For the most frequent source tokens: the "
         "destination tokens that attend to it most (QK) and the tokens its OV circuit raises most; the first " +
         std::to_string(max_entries) + " sources of each head.</p><div class=\"tri-grid\">";
    for (auto& head : *heads) {
      h += "<table class=\"data tri\"><caption>" + esc(head_label(head)) + "</caption><thead><tr><th>source</th><th>destinations (QK)</th><th>outputs (OV)</th><th>skip-trigrams</th></tr></thead><tbody>";
      auto entries = get(head, "entries");
      if (!entries) continue;
      for (size_t i = 0; i < std::min(max_entries, entries->size()); ++i) {
        const json& e = (*entries)[i];
        std::string dst, outs, text;
        if (auto d = get(e, "destinations"))
          for (size_t k = 0; k < std::min(max_k, d->size()); ++k) dst += tok_html((*d)[k]["token"]) + " ";
        if (auto o = get(e, "outputs"))
          for (size_t k = 0; k < std::min(max_k, o->size()); ++k) outs += tok_html((*o)[k]["token"]) + " ";
        if (auto t = get(e, "text"))
          for (size_t k = 0; k < std::min<size_t>(3, t->size()); ++k)
            if ((*t)[k].is_string()) text += "<div class=\"tritext\">" + esc((*t)[k].get<std::string>()) + "</div>";
        h += "<tr>" + td(tok_html(e.value("source", json()))) + td(dst) + td(outs) + td(text) + "</tr>";
      }
      h += "</tbody></table>";
    }
    h += "</div>";
  }
  auto bugs = get(*st, "bugs");
  if (!bugs) {
    h += "<p class=\"note\">" + esc(r.name) + ": skip-trigram bugs not searched (analysed without --data).</p>";
  } else if (bugs->empty()) {
    h += "<p class=\"note\">" + esc(r.name) + ": no skip-trigram bugs found.</p>";
  } else {
    h += "<h4>" + esc(r.name) + ": skip-trigram bugs found (" + std::to_string(bugs->size()) + ")</h4>"
         "<table class=\"data bugs\"><thead><tr><th>head</th><th>bug</th><th>plausible trigram a</th><th>plausible trigram b</th><th>crossed combinations boosted</th></tr></thead><tbody>";
    for (size_t i = 0; i < std::min<size_t>(20, bugs->size()); ++i) {
      const json& b = (*bugs)[i];
      auto tri = [&](const json& x) {
        return tok_html(b.value("source", json())) + " … " + tok_html(x.value("destination", json())) + " → " +
               tok_html(x.value("out", json())) + " <small>P=" + fmt(num(x, "corpus_prob"), 4) + "</small>";
      };
      std::string crossed;
      if (auto c = get(b, "crossed"))
        for (auto& x : *c) crossed += "<div>" + tri(x) + " <small>boost " + fmt(num(x, "boost"), 2) + "</small></div>";
      h += "<tr>" + td(esc(head_label(b))) + td(esc(b.value("text", ""))) + td(tri(b.value("a", json::object()))) +
           td(tri(b.value("b", json::object()))) + td(crossed) + "</tr>";
    }
    h += "</tbody></table>";
  }
  return h;
}

std::string claims_table(const std::vector<Claim>& claims) {
  std::string h = "<table class=\"data claims\"><thead><tr><th>run</th><th>topic</th><th>the paper's claim</th><th>paper</th>"
                  "<th>this run</th><th>verdict</th><th>rule</th></tr></thead><tbody>";
  for (auto& c : claims) {
    std::string cls = c.verdict == "reproduced" ? "yes" : c.verdict == "partly" ? "partly" : c.verdict == "not reproduced" ? "no" : "na";
    h += "<tr data-claim=\"" + esc(c.topic) + "\">" + td(esc(c.run)) + td(esc(c.topic)) + td(esc(c.claim)) + td(esc(c.paper)) +
         td(esc(c.measured), "measured") + "<td class=\"verdict " + cls + "\">" + esc(c.verdict) + "</td>" + td(esc(c.rule), "rule") + "</tr>";
  }
  h += "</tbody></table>";
  return h;
}

// Conventions analysis.json states (LN folding, positions, ...), for the methods notes.
std::string conventions(const RunInputs& r) {
  auto c = get(r.analysis, "conventions");
  if (!c || !c->is_object()) return "";
  std::string h = "<details><summary>" + esc(r.name) + ": analysis conventions</summary><dl>";
  for (auto& [k, v] : c->items())
    if (v.is_string()) h += "<dt>" + esc(k) + "</dt><dd>" + esc(v.get<std::string>()) + "</dd>";
  return h + "</dl></details>";
}

// The head with the largest `score` among those drawn in `sample` (layer, head), or (-1, -1).
std::pair<int, int> best_head(const RunInputs& r, const json& sample, const char* score) {
  std::pair<int, int> best{-1, -1};
  double best_v = -1e9;
  auto heads = get(r.analysis, "heads");
  auto drawn = get(sample, "heads");
  if (!heads || !drawn) return best;
  for (auto& h : *heads) {
    double v = num(h, score);
    if (std::isnan(v) || v <= best_v) continue;
    bool in_sample = std::any_of(drawn->begin(), drawn->end(), [&](const json& d) {
      return d.value("layer", -2) == h.value("layer", -1) && d.value("head", -2) == h.value("head", -1);
    });
    if (in_sample) best_v = v, best = {h.value("layer", -1), h.value("head", -1)};
  }
  return best;
}

void attention_figures(Section& s, const RunInputs& r, const FigureLimits& lim, std::vector<std::string>& notes) {
  auto samples = get(r.analysis, "attention_samples");
  if (!samples || !samples->is_array()) return;
  for (auto& sample : *samples)
    if (auto f = fig_attention(r, sample, lim, &notes)) s.add_figure(*f);
  // The paper's close-ups: the strongest induction head on the repeated sequence, the strongest
  // previous-token head on real text.
  for (auto& sample : *samples) {
    std::string name = sample.value("name", "");
    const char* score = name == "repeated_random" ? "induction_score" : name == "text" ? "prev_token_score" : nullptr;
    if (!score || r.shape.n_layers < 1) continue;
    auto [l, h] = best_head(r, sample, score);
    if (l < 0) continue;
    std::string why = std::string(name == "repeated_random" ? "highest induction score" : "highest previous-token score");
    if (auto f = fig_attention_detail(r, sample, l, h, why)) s.add_figure(*f);
  }
}

// The battery of per-head analyses for one model with ≥ 2 layers (toy or GPT-2).
void multilayer_battery(Section& s, const RunInputs& r, const FigureLimits& lim, std::vector<std::string>& notes) {
  s.add_html("<h3 id=\"" + slug(r.name) + "-heads\">" + esc(r.name) + "</h3>");
  attention_figures(s, r, lim, notes);
  if (auto f = fig_head_scores(r)) s.add_figure(*f);
  if (auto f = fig_composition(r, lim, &notes)) s.add_figure(*f);
  if (auto f = fig_kcomp_scatter(r)) s.add_figure(*f);
  if (auto f = fig_positivity(r); f && !r.is_gpt2) s.add_figure(*f);
  if (auto f = fig_term_importance(r)) s.add_figure(*f);
  if (auto f = fig_head_ablation(r)) s.add_figure(*f);
  s.add_html(conventions(r));
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Report build_report(const std::vector<RunInputs>& runs, const RunInputs* gpt2) {
  Report rep;
  FigureLimits lim;
  std::vector<const RunInputs*> toys, all;
  for (auto& r : runs) toys.push_back(&r), all.push_back(&r);
  if (gpt2) all.push_back(gpt2);

  Section cards{"models", "Model cards", {}};
  cards.add_html(model_cards(all));
  rep.sections.push_back(std::move(cards));

  Section training{"training", "Training: loss curves and in-context learning", {}};
  if (auto f = fig_loss_curves(toys, lim, &rep.notes)) training.add_figure(*f);
  else training.add_html("<p class=\"note\">No metrics.jsonl in these runs: no loss curves.</p>");
  if (auto f = fig_icl_over_training(toys)) training.add_figure(*f);
  if (auto f = fig_loss_by_position(all)) training.add_figure(*f);
  rep.sections.push_back(std::move(training));

  Section zero{"bigrams", "Zero-layer transformers: bigram statistics", {}};
  if (auto f = fig_bigram_stats(all)) zero.add_figure(*f);
  for (auto* r : all) zero.add_html(bigram_table(*r, r->shape.n_layers == 0 ? 15 : 8, 5));
  rep.sections.push_back(std::move(zero));

  Section one{"one-layer", "One-layer attention-only transformers: skip-trigrams and copying", {}};
  for (auto* r : toys) {
    if (r->shape.n_layers != 1) continue;
    one.add_html("<h3>" + esc(r->name) + "</h3>");
    if (auto f = fig_positivity(*r)) one.add_figure(*f);
    attention_figures(one, *r, lim, rep.notes);
    one.add_html(skip_trigram_tables(*r, 6, 5));
    one.add_html(conventions(*r));
  }
  if (one.blocks.empty()) one.add_html("<p class=\"note\">No one-layer run given.</p>");
  rep.sections.push_back(std::move(one));

  // Multi-layer toys: attention-only ones in the paper's section, toys with MLP blocks (the lab
  // model) under their own heading with the same battery.
  const auto has_mlp = [](const RunInputs* r) { return r->model_config.value("attn_only", json(true)) == json(false); };
  Section two{"two-layer", "Two-layer attention-only transformers: composition and induction heads", {}};
  Section mlp{"with-mlp", "Transformers with MLP blocks: the same battery", {}};
  for (auto* r : toys)
    if (r->shape.n_layers >= 2) multilayer_battery(has_mlp(r) ? mlp : two, *r, lim, rep.notes);
  if (two.blocks.empty()) two.add_html("<p class=\"note\">No attention-only run with two or more layers given.</p>");
  rep.sections.push_back(std::move(two));
  if (!mlp.blocks.empty()) rep.sections.push_back(std::move(mlp));

  Section phase{"phase-change", "The phase change: induction heads form during training", {}};
  for (auto* r : toys)
    if (auto f = fig_phase_change(*r)) phase.add_figure(*f);
  if (phase.blocks.empty())
    phase.add_html("<p class=\"note\">No snapshot analysis found (<code>RUN/phase_change.json</code>, written by "
                   "<code>circuitlab analyze --snapshots RUN --out RUN/phase_change.json</code>).</p>");
  rep.sections.push_back(std::move(phase));

  if (gpt2) {
    Section g{"gpt2", "GPT-2: the same battery", {}};
    multilayer_battery(g, *gpt2, lim, rep.notes);
    rep.sections.push_back(std::move(g));
  }

  // Sparse autoencoders: one section per run whose directory holds sae/eval.json.
  for (auto* r : all)
    if (r->sae) rep.sections.push_back(sae_section(*r, SaeEmbedLimits{}, &rep.notes));
  if (std::any_of(all.begin(), all.end(), [](const RunInputs* r) { return r->sae.has_value(); }))
    rep.styles.push_back(sae_section_css());

  rep.claims = evaluate_claims(runs, gpt2);
  Section claims{"claims", "Claims of the paper against these runs", {}};
  claims.add_html("<p>Every measured value below is computed from the runs' <code>analysis.json</code> and "
                  "<code>phase_change.json</code>; the rule column states how the verdict is decided. Our models are "
                  "far smaller and trained on far fewer tokens than the paper's, so absolute numbers differ.</p>");
  claims.add_html(claims_table(rep.claims));
  rep.sections.push_back(std::move(claims));
  return rep;
}

json specs_by_id(const Report& report) {
  json specs = json::object();
  for (auto& s : report.sections)
    for (auto& b : s.blocks)
      if (b.has_figure) {
        if (specs.contains(b.figure.id)) fail("report: two figures share the id \"" + b.figure.id + "\" (run names must differ)");
        specs[b.figure.id] = b.figure.spec;
      }
  return specs;
}

namespace {

const char* kStyle = R"CSS(
body{font-family:Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px 0;font-size:24px} header p{margin:2px 0;font-size:13px;opacity:.9}
nav{padding:8px 32px;background:#eef2f7;font-size:14px;border-bottom:1px solid #d5dde8}
nav a{margin-right:16px;color:#1f3a5f;text-decoration:none}
main{padding:8px 32px 48px 32px;max-width:1500px}
section{margin-top:28px} h2{border-bottom:2px solid #1f3a5f;padding-bottom:4px}
figure.fig{background:#fff;border:1px solid #ddd;border-radius:4px;padding:12px;margin:14px 0;overflow-x:auto}
figure.fig h4{margin:0 0 6px 0} figcaption{font-size:13px;color:#444;max-width:900px;margin-top:6px}
div.figure{min-height:40px}
table.data{border-collapse:collapse;font-size:13px;margin:8px 0;background:#fff}
table.data th,table.data td{border:1px solid #ddd;padding:3px 7px;vertical-align:top;text-align:left}
table.data thead th{background:#eef2f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.cards th{white-space:nowrap}
.tok{font-family:Menlo,Consolas,monospace;background:#f1f1f1;border-radius:3px;padding:0 3px;white-space:pre}
.tri-grid{display:flex;flex-wrap:wrap;gap:12px} table.tri caption{font-weight:bold;text-align:left}
.tritext{font-family:Menlo,Consolas,monospace;font-size:12px;white-space:pre}
td.verdict{font-weight:bold;white-space:nowrap} td.yes{background:#d5f5e3} td.partly{background:#fcf3cf}
td.no{background:#fadbd8} td.na{background:#eee} td.rule{font-size:12px;color:#555;max-width:320px}
p.note,ul.notes{font-size:13px;color:#555} p.stats{font-size:13px;margin:2px 0}
details{font-size:13px;margin:8px 0} dt{font-weight:bold} dd{margin:0 0 6px 16px}
)CSS";

}  // namespace

std::string script_json(const json& j) {
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  // Inside <script type="application/json"> only "</" could end the block early.
  std::string safe;
  safe.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == '/') safe += "<\\";
    else safe += text[i];
  }
  return safe;
}

std::string render_html(const Report& report, const std::string& runtime_js, const std::string& title) {
  if (runtime_js.find("</script") != std::string::npos)
    fail("report runtime: the bundled script contains \"</script\" and cannot be inlined");
  std::string safe = script_json(specs_by_id(report));
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));

  std::string h;
  h.reserve(runtime_js.size() + safe.size() + 200000);
  h += "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data:; font-src data:\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" + esc(title) + "</title>\n<style>" +
       kStyle;
  for (auto& css : report.styles) h += css;
  h += "</style>\n</head>\n<body>\n<header><h1>" + esc(title) +
       "</h1><p>Reproducing <em>A Mathematical Framework for Transformer Circuits</em> (Elhage, Nanda, Olsson et al., 2021). "
       "Generated " + when + " by <code>circuitlab report</code>; every figure and table is drawn from the runs' "
       "analysis.json, metrics.jsonl and configs. Self-contained: opens offline.</p></header>\n<nav>";
  for (auto& s : report.sections) h += "<a href=\"#" + s.id + "\">" + esc(s.title.substr(0, s.title.find(':'))) + "</a>";
  h += "</nav>\n<main>\n";
  for (auto& s : report.sections) {
    h += "<section id=\"" + s.id + "\"><h2>" + esc(s.title) + "</h2>\n";
    for (auto& b : s.blocks) {
      if (!b.has_figure) {
        h += b.html + "\n";
        continue;
      }
      const Figure& f = b.figure;
      h += "<figure class=\"fig\" id=\"fig-" + f.id + "\" aria-label=\"" + esc(f.title) + "\"><div class=\"figure\" data-spec=\"" + f.id +
           "\"></div><figcaption>" + f.caption + " <a class=\"svg\" href=\"svg/" + f.id + ".svg\">SVG</a></figcaption></figure>\n";
    }
    h += "</section>\n";
  }
  if (!report.notes.empty()) {
    h += "<section id=\"notes\"><h2>Notes on what is drawn</h2><ul class=\"notes\">";
    for (auto& n : report.notes) h += "<li>" + esc(n) + "</li>";
    h += "</ul></section>\n";
  }
  h += "</main>\n<script type=\"application/json\" id=\"circuitlab-specs\">" + safe + "</script>\n<script>" + runtime_js +
       "</script>\n</body></html>\n";
  return h;
}

ReportResult write_report(const ReportOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  if (opts.runs.empty() && opts.gpt2.empty()) fail("runs: no run directory and no GPT-2 analysis given (`runs` or `gpt2`)");
  if (opts.out.empty()) fail("out: no output directory given");

  // A directory without analysis.json that holds analysed runs (runs/) stands for those runs,
  // in name order (attn0l, attn1l, attn2l, ...).
  std::vector<std::string> run_dirs;
  for (auto& d : opts.runs) {
    if (!is_directory(d) || file_exists(d + "/analysis.json")) {
      run_dirs.push_back(d);
      continue;
    }
    std::vector<std::string> subs;
    for (auto& e : list_files(d))
      if (file_exists(d + "/" + e + "/analysis.json")) subs.push_back(d + "/" + e);
    if (subs.empty()) fail(d + "/analysis.json: missing, and no analysed run directories inside " + d);
    std::sort(subs.begin(), subs.end());
    run_dirs.insert(run_dirs.end(), subs.begin(), subs.end());
  }
  ProgressBar bar("report", static_cast<double>(run_dirs.size() + (opts.gpt2.empty() ? 0 : 1) + 3), "step");
  double done = 0;
  std::vector<RunInputs> runs;
  std::set<std::string> names;
  for (auto& d : run_dirs) {
    runs.push_back(load_run(d));
    if (!names.insert(runs.back().name).second)
      fail(d + ": a run named \"" + runs.back().name + "\" was already given (run directory names must differ)");
    bar.update(++done, "loaded " + runs.back().name);
  }
  RunInputs gpt2;
  if (!opts.gpt2.empty()) {
    gpt2 = load_run(opts.gpt2, true);
    if (names.count(gpt2.name)) gpt2.name += " (GPT-2)";
    bar.update(++done, "loaded " + gpt2.name);
  }

  Report rep = build_report(runs, opts.gpt2.empty() ? nullptr : &gpt2);
  json specs = specs_by_id(rep);
  bar.update(++done, "built " + std::to_string(specs.size()) + " figures");

  make_dirs(opts.out);
  JsBundle bundle = find_or_build_bundle(opts.out + "/.js-cache");
  std::string html = render_html(rep, read_file(bundle.runtime_js), "circuitlab report");
  write_file_atomic(opts.out + "/index.html", html);
  bar.update(++done, "index.html");

  ReportResult res;
  res.html_path = opts.out + "/index.html";
  res.html_bytes = html.size();
  res.n_figures = static_cast<int>(specs.size());
  res.n_claims = static_cast<int>(rep.claims.size());
  if (opts.svg) {
    std::string svg_dir = opts.out + "/svg";
    make_dirs(svg_dir);
    // Figures of an earlier report into the same --out that this one no longer has.
    for (const auto& entry : list_files(svg_dir))
      if (entry.size() > 4 && entry.compare(entry.size() - 4, 4, ".svg") == 0 && !specs.contains(entry.substr(0, entry.size() - 4)))
        ::unlink((svg_dir + "/" + entry).c_str());
    std::string specs_path = opts.out + "/.specs." + std::to_string(::getpid()) + ".json";
    write_file_atomic(specs_path, specs.dump(-1, ' ', false, json::error_handler_t::replace));
    try {
      run_svg_export(bundle, specs_path, svg_dir);
    } catch (...) {
      ::unlink(specs_path.c_str());
      throw;
    }
    ::unlink(specs_path.c_str());
    for (auto& [id, _] : specs.items())
      if (file_exists(svg_dir + "/" + id + ".svg")) ++res.n_svgs;
  }
  bar.update(++done, "svg");
  bar.finish();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace circuitlab::reports
