// Synthetic run directories for the report tests: metrics.jsonl, train_config.json,
// model/config.json + a real safetensors file, analysis.json and phase_change.json in the
// formats of analysis/ANALYSIS_JSON.md, with values drawn from a seeded RNG (and a planted
// induction circuit so the claims have something to find). Not an analysis: the report must
// only copy these numbers, which is what the tests check.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace circuitlab::reports::testing {

using nlohmann::json;

struct FixtureShape {
  std::string name = "attn2l";
  int n_layers = 2, n_heads = 4, d_model = 32, d_head = 8, n_ctx = 64, d_vocab = 100;
  bool gpt2 = false;
  int metric_rows = 200;
  int sample_len = 20;   // attention sample: [BOS, r(sample_len), r(sample_len)]
  int text_len = 48;
  int bigram_rows = 50, top_k = 10, skip_sources = 20;
  int snapshots = 12;
  uint32_t seed = 1;
};

inline json token(int id) {
  static const char* words[] = {" the", " of", " and", " to", " in", " a", " is", "\n", " that", " for", " it",
                                " with", " as", " was", " on", " keep", " mind", " bay", " at", "ing", "<b>", "&"};
  std::string s = id < 22 ? words[id] : " w" + std::to_string(id);
  return {{"id", id}, {"gpt2_id", id}, {"str", s}};
}

// The tensors a toy of this shape has (attention-only, LN folded away, no Q/K/V biases).
inline std::vector<std::pair<std::string, std::vector<int64_t>>> toy_tensors(const FixtureShape& s) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"embed.W_E", {s.d_vocab, s.d_model}}, {"pos_embed.W_pos", {s.n_ctx, s.d_model}},
      {"unembed.W_U", {s.d_model, s.d_vocab}}, {"unembed.b_U", {s.d_vocab}}};
  for (int l = 0; l < s.n_layers; ++l) {
    std::string p = "blocks." + std::to_string(l) + ".attn.";
    for (const char* w : {"W_Q", "W_K", "W_V"}) tensors.push_back({p + w, {s.n_heads, s.d_model, s.d_head}});
    tensors.push_back({p + "W_O", {s.n_heads, s.d_head, s.d_model}});
    tensors.push_back({p + "b_O", {s.d_model}});
  }
  return tensors;
}

// analysis.json's n_params: the toy's tensors, or GPT-2's (LN, MLP, tied unembedding).
inline int64_t param_count(const FixtureShape& s) {
  if (s.gpt2) {
    const int64_t D = s.d_model;
    return int64_t(s.d_vocab) * D + int64_t(s.n_ctx) * D + 2 * D + s.n_layers * (12 * D * D + 13 * D);
  }
  int64_t total = 0;
  for (const auto& [name, shape] : toy_tensors(s)) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    total += n;
  }
  return total;
}

// Writes the tensors a model of this shape has, with zero data, as a valid safetensors file.
inline int64_t write_safetensors(const std::string& path, const FixtureShape& s) {
  const auto tensors = toy_tensors(s);
  json header = json::object();
  int64_t offset = 0, total = 0;
  for (auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
    total += n;
  }
  std::string h = header.dump();
  std::string bytes(8, '\0');
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  bytes += h;
  bytes += std::string(static_cast<size_t>(offset), '\0');
  write_file_atomic(path, bytes);
  return total;
}

// A real (random-weight) attention-only model dir in the TransformerLens layout, for running the
// actual `circuitlab analyze` in the tests: weights ~ N(0, 0.02²·…), no LayerNorm, zero biases.
inline void write_random_model(const std::string& dir, const FixtureShape& s) {
  make_dirs(dir);
  json cfg = {{"n_layers", s.n_layers}, {"d_model", s.d_model}, {"n_heads", s.n_heads}, {"d_head", s.d_head},
              {"n_ctx", s.n_ctx}, {"d_vocab", s.d_vocab}, {"d_vocab_out", s.d_vocab}, {"attn_only", true},
              {"normalization_type", nullptr}, {"positional_embedding_type", "standard"}, {"act_fn", "gelu_new"},
              {"d_mlp", 4 * s.d_model}, {"eps", 1e-5}, {"seed", 0}};
  write_file_atomic(dir + "/config.json", cfg.dump(2));
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"embed.W_E", {s.d_vocab, s.d_model}}, {"pos_embed.W_pos", {s.n_ctx, s.d_model}}};
  for (int l = 0; l < s.n_layers; ++l) {
    std::string p = "blocks." + std::to_string(l) + ".attn.";
    for (const char* w : {"W_Q", "W_K", "W_V"}) tensors.push_back({p + w, {s.n_heads, s.d_model, s.d_head}});
    tensors.push_back({p + "W_O", {s.n_heads, s.d_head, s.d_model}});
    for (const char* b : {"b_Q", "b_K", "b_V"}) tensors.push_back({p + b, {s.n_heads, s.d_head}});
    tensors.push_back({p + "b_O", {s.d_model}});
  }
  tensors.push_back({"unembed.W_U", {s.d_model, s.d_vocab}});
  tensors.push_back({"unembed.b_U", {s.d_vocab}});
  std::mt19937 rng(s.seed);
  json header = json::object();
  std::string data;
  for (auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    bool bias = name.find(".b_") != std::string::npos;
    std::normal_distribution<float> g(0.0f, name.find("W_E") != std::string::npos || name.find("W_pos") != std::string::npos ? 0.1f : 0.3f);
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + 4 * n}}};
    for (int64_t i = 0; i < n; ++i) {
      float v = bias ? 0.0f : g(rng);
      data.append(reinterpret_cast<const char*>(&v), 4);  // little-endian host (x86/arm64)
    }
  }
  std::string h = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);
  write_file_atomic(dir + "/model.safetensors", bytes + h + data);
}

inline json make_analysis(const FixtureShape& s, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto r4 = [](double v) { return std::round(v * 1e4) / 1e4; };
  int L = s.n_layers, H = s.n_heads;
  // Planted circuit: head 1 of layer 0 is the previous-token head, heads 0 and 2 of the last
  // layer are induction heads.
  auto is_prev = [&](int l, int h) { return L >= 2 && l == 0 && h == 1; };
  auto is_ind = [&](int l, int h) { return L >= 2 && l == L - 1 && (h == 0 || h == 2 % H); };
  json a;
  a["format"] = "circuitlab-analysis-v1";
  a["model_dir"] = "runs/" + s.name + "/model";
  a["data_dir"] = "runs/data/default";
  a["created_utc"] = "2026-11-21T18:00:00Z";
  a["elapsed_s"] = 1.5;
  a["threads"] = 1;
  a["seed"] = 0;
  a["config"] = {{"n_layers", L}, {"d_model", s.d_model}, {"n_heads", H}, {"d_head", s.d_head}, {"n_ctx", s.n_ctx},
                 {"d_vocab", s.d_vocab}, {"d_vocab_out", s.d_vocab}, {"attn_only", true},
                 {"normalization_type", "LN"}, {"positional_embedding_type", "standard"},
                 {"family", s.gpt2 ? "gpt2" : "toy"}};
  a["n_params"] = param_count(s);
  a["vocab"] = {{"compact", !s.gpt2}, {"d_vocab", s.d_vocab}, {"bos", token(0)}, {"other", s.gpt2 ? json(nullptr) : token(s.d_vocab - 1)}};
  a["conventions"] = {{"ln_folding", "LN scale folded into W_Q/W_K/W_V; centring folded"},
                      {"biases", "ignored in circuits"}, {"positions", "token-token circuits exclude W_pos"},
                      {"composition", "TransformerLens pairing"}, {"head_scores", "ARENA / Olsson"},
                      {"icl", "loss at 500 minus loss at 50"}};
  a["thresholds"] = {{"prev_token", 0.4}, {"induction", 0.4}, {"duplicate", 0.4}, {"prefix_matching", 0.4},
                     {"copying", 0.5}, {"first_token", 0.8}};
  json heads = json::array();
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      double prev = is_prev(l, h) ? 0.85 + 0.1 * u(rng) : 0.2 * u(rng);
      double ind = is_ind(l, h) ? 0.6 + 0.3 * u(rng) : 0.1 * u(rng);
      double ov = (L == 1 ? (h % 6 != 5 ? 0.5 + 0.4 * u(rng) : -0.5 * u(rng))
                          : is_ind(l, h) ? 0.7 + 0.25 * u(rng) : 2 * u(rng) - 1);
      json labels = json::array();
      if (prev >= 0.4) labels.push_back("previous_token");
      if (ind >= 0.4) labels.push_back("induction");
      double kcomp = is_ind(l, h) ? 0.6 + 0.35 * u(rng) : 0.8 * u(rng) - 0.5;
      heads.push_back({{"layer", l}, {"head", h}, {"ov_positivity", r4(ov)}, {"ov_positivity_resid", r4(ov * 0.8 + 0.1 * u(rng))},
                       {"qk_positivity", r4(2 * u(rng) - 1)},
                       {"kcomp_positivity", l == 0 ? json(nullptr) : json(r4(kcomp))},
                       {"kcomp_source", l == 0 ? json(nullptr) : json{{"layer", 0}, {"head", 1}}},
                       {"kcomp_positivity_weighted", l == 0 ? json(nullptr) : json(r4(kcomp * 0.9))},
                       {"kcomp_trace_weighted", l == 0 ? json(nullptr) : json(r4(kcomp * 12))},
                       {"prev_token_score", r4(prev)}, {"current_token_score", r4(0.3 * u(rng))},
                       {"first_token_score", r4(0.3 * u(rng))}, {"duplicate_score", r4(0.2 * u(rng))},
                       {"induction_score", r4(ind)}, {"prefix_matching_score", r4(is_ind(l, h) ? 0.5 + 0.3 * u(rng) : 0.1 * u(rng))},
                       {"copying_score", r4(2 * u(rng) - 1)}, {"ov_norm", r4(5 * u(rng))}, {"qk_norm", r4(5 * u(rng))},
                       {"labels", labels}});
    }
  a["heads"] = heads;
  {
    // Pearson r of ov_positivity_resid vs ov_positivity over the heads (as analysis writes it).
    std::vector<double> x, y;
    for (const auto& h : heads) x.push_back(h["ov_positivity_resid"]), y.push_back(h["ov_positivity"]);
    const double n = static_cast<double>(x.size());
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
    for (size_t i = 0; i < x.size(); ++i)
      sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx), syy += (y[i] - my) * (y[i] - my);
    a["ov_copying_correlation"] = {{"pearson_r", sxx > 0 && syy > 0 ? json(sxy / std::sqrt(sxx * syy)) : json(nullptr)},
                                   {"heads", x.size()}};
  }

  if (L >= 2) {
    double base = 1.0 / std::sqrt(static_cast<double>(s.d_model));
    json comp;
    for (const char* kind : {"q", "k", "v"}) {
      json m = json::array();
      json mb = json::array();
      for (int l1 = 0; l1 < L; ++l1) {
        json a1 = json::array(), b1 = json::array();
        for (int h1 = 0; h1 < H; ++h1) {
          json a2 = json::array(), b2 = json::array();
          for (int l2 = 0; l2 < L; ++l2) {
            json a3 = json::array(), b3 = json::array();
            for (int h2 = 0; h2 < H; ++h2) {
              double v = 0;
              if (l1 < l2) {
                v = base * (0.6 + 0.8 * u(rng));
                if (std::string(kind) == "k" && is_prev(l1, h1) && is_ind(l2, h2)) v = base * (4 + 2 * u(rng));
              }
              a3.push_back(r4(v));
              b3.push_back(l1 < l2 ? r4(v - base) : 0.0);
            }
            a2.push_back(a3), b2.push_back(b3);
          }
          a1.push_back(a2), b1.push_back(b2);
        }
        m.push_back(a1), mb.push_back(b1);
      }
      comp[kind] = m;
      comp[std::string(kind) + "_minus_baseline"] = mb;
    }
    comp["baseline"] = {{"random_mean", r4(base)}, {"random_std", r4(base * 0.1)}, {"n_samples", 300},
                        {"inv_sqrt_d_model", 1.0 / std::sqrt(static_cast<double>(s.d_model))}};
    comp["pairing"] = "TransformerLens";
    comp["top_k"] = json::array();
    a["composition"] = comp;
  } else {
    a["composition"] = nullptr;
  }

  json rows = json::array();
  for (int i = 0; i < s.bigram_rows; ++i) {
    json mt = json::array(), ct = json::array();
    for (int k = 0; k < s.top_k; ++k) {
      mt.push_back({{"token", token((i * 7 + k * 3) % s.d_vocab)}, {"logprob", r4(-1.0 - k * 0.5 - u(rng))}});
      ct.push_back({{"token", token((i * 7 + k * 5) % s.d_vocab)}, {"prob", r4(0.3 / (k + 1))}});
    }
    rows.push_back({{"token", token(i % s.d_vocab)}, {"corpus_count", 5000 - 20 * i}, {"model_top", mt}, {"corpus_top", ct}});
  }
  a["bigram"] = {{"source", L == 0 ? "zero_layer_model" : "direct_path"}, {"top_k", s.top_k}, {"rows", rows},
                 {"n_rows", s.bigram_rows}, {"n_sources_compared", 80}, {"top1_agreement", r4(0.3 + 0.4 * u(rng))},
                 {"kl_corpus_model", r4(0.5 + u(rng))}, {"bigram_tokens_counted", 100000}};

  if (L == 1) {
    json sheads = json::array(), bugs = json::array();
    for (int h = 0; h < H; ++h) {
      json entries = json::array();
      for (int e = 0; e < s.skip_sources; ++e) {
        json d = json::array(), o = json::array();
        for (int k = 0; k < s.top_k; ++k) {
          d.push_back({{"token", token((e + k + h) % s.d_vocab)}, {"score", r4(3 - 0.2 * k)}});
          o.push_back({{"token", token((e * 3 + k) % s.d_vocab)}, {"logit", r4(2 - 0.1 * k)}});
        }
        entries.push_back({{"source", token(e % s.d_vocab)}, {"destinations", d}, {"outputs", o},
                           {"text", {token(e)["str"].get<std::string>() + " … " + d[0]["token"]["str"].get<std::string>() + " → " +
                                     o[0]["token"]["str"].get<std::string>()}}});
      }
      sheads.push_back({{"layer", 0}, {"head", h}, {"entries", entries}});
    }
    bugs.push_back({{"layer", 0}, {"head", 0}, {"source", token(15)},
                    {"a", {{"destination", token(4)}, {"out", token(16)}, {"corpus_prob", 0.05}}},
                    {"b", {{"destination", token(18)}, {"out", token(17)}, {"corpus_prob", 0.04}}},
                    {"crossed", {{{"destination", token(4)}, {"out", token(17)}, {"corpus_prob", 0.00001}, {"boost", 2.5}}}},
                    {"text", " keep … in → bay"}});
    a["skip_trigrams"] = {{"n_sources", s.skip_sources}, {"top_k", s.top_k}, {"heads", sheads}, {"bugs", bugs}};
  } else {
    a["skip_trigrams"] = nullptr;
  }

  if (L >= 1) {
    json orders = json::array();
    double uniform = std::log(static_cast<double>(s.d_vocab)), loss = uniform;
    double marg[] = {1.5 + 0.5 * u(rng), 1.0 + u(rng), 0.05 + 0.1 * u(rng), 0.01};
    const char* labels[] = {"direct path", "+ individual heads", "+ virtual heads (2nd order)", "+ 3rd order"};
    for (int k = 0; k <= L; ++k) {
      double m = k < 4 ? marg[k] : 0.001;
      loss -= m;
      std::string label = k < 4 ? labels[k] : "+ order " + std::to_string(k);
      orders.push_back({{"order", k}, {"label", label}, {"loss", r4(loss)}, {"marginal_nats", r4(m)}});
    }
    json per = json::array();
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h)
        per.push_back({{"layer", l}, {"head", h}, {"loss_delta", r4(is_ind(l, h) ? 0.3 : 0.05 * u(rng))},
                       {"icl_delta", r4(is_ind(l, h) ? 0.2 : -0.02 * u(rng))}});
    a["term_importance"] = {{"n_tokens", 20000}, {"window_len", s.n_ctx}, {"uniform_loss", r4(uniform)},
                            {"full_loss", r4(loss)}, {"orders", orders}, {"per_head", per}};
  } else {
    a["term_importance"] = nullptr;
  }

  json lbp = json::array();
  double icl_gain = L >= 2 ? 0.45 : 0.08;
  for (int p = 0; p < s.n_ctx; ++p) lbp.push_back(r4(4.0 - icl_gain * std::log1p(p) / std::log1p(s.n_ctx) + 0.02 * u(rng)));
  int early = s.n_ctx / 10, late = s.n_ctx - 1;
  a["icl"] = {{"early_pos", early}, {"late_pos", late}, {"adjusted", true}, {"note", "n_ctx small"},
              {"loss_early", lbp[early]}, {"loss_late", lbp[late]},
              {"icl_score", r4(lbp[late].get<double>() - lbp[early].get<double>())}, {"n_windows", 64},
              {"window_len", s.n_ctx}, {"loss_by_position", lbp}};

  json samples = json::array();
  if (L >= 1) {
    for (const char* name : {"repeated_random", "text"}) {
      bool rep = std::string(name) == "repeated_random";
      int T = rep ? 1 + 2 * s.sample_len : s.text_len;
      json toks = json::array();
      for (int i = 0; i < T; ++i) toks.push_back(token(rep ? (i == 0 ? 0 : 1 + (i - 1) % s.sample_len * 3 % (s.d_vocab - 1)) : (i * 11) % s.d_vocab));
      json hs = json::array();
      int shown = 0;
      for (int l = 0; l < L; ++l)
        for (int h = 0; h < H; ++h) {
          if (s.gpt2 && !(is_prev(l, h) || is_ind(l, h) || (h < 2 && l % 4 == 0))) continue;
          if (++shown > 32) continue;
          json pat = json::array();
          for (int q = 0; q < T; ++q) {
            json row = json::array();
            int target = is_prev(l, h) ? std::max(0, q - 1) : (is_ind(l, h) && rep && q > s.sample_len) ? q - s.sample_len + 1 : 0;
            for (int k = 0; k < T; ++k) row.push_back(k > q ? 0.0 : k == target ? r4(0.7 + 0.3 / (q + 1)) : r4(0.3 / (q + 1)));
            pat.push_back(row);
          }
          hs.push_back({{"layer", l}, {"head", h}, {"pattern", pat}});
        }
      samples.push_back({{"name", name}, {"tokens", toks}, {"heads", hs}});
    }
  }
  a["attention_samples"] = samples;
  return a;
}

inline json make_phase(const FixtureShape& s, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  json snaps = json::array();
  int formed = -1;
  for (int i = 0; i < s.snapshots; ++i) {
    int step = i == 0 ? 0 : static_cast<int>(std::pow(2.0, i + 3));
    double ind = i < s.snapshots / 2 ? 0.05 + 0.05 * u(rng) : 0.6 + 0.1 * u(rng);
    if (ind >= 0.4 && formed < 0) formed = step;
    json heads = json::array();
    snaps.push_back({{"step", step}, {"tokens", step * 4096}, {"heads", heads},
                     {"best_induction", {{"layer", s.n_layers - 1}, {"head", 0}, {"score", std::round(ind * 1e4) / 1e4}}},
                     {"best_prev_token", {{"layer", 0}, {"head", 1}, {"score", std::round((0.3 + 0.05 * i) * 1e4) / 1e4}}},
                     {"icl", {{"icl_score", std::round((i < s.snapshots / 2 ? -0.05 : -0.45) * 1e4) / 1e4}, {"loss_early", 5.0},
                              {"loss_late", 4.6}, {"early_pos", 25}, {"late_pos", 255}}}});
  }
  return {{"format", "circuitlab-phase-change-v1"}, {"run_dir", "runs/" + s.name}, {"data_dir", nullptr},
          {"created_utc", "2026-11-21T18:00:00Z"}, {"thresholds", {{"induction", 0.4}}}, {"snapshots", snaps},
          {"phase_change", {{"threshold", 0.4}, {"step", formed < 0 ? json(nullptr) : json(formed)},
                            {"tokens", formed < 0 ? json(nullptr) : json(formed * 4096)},
                            {"layer", s.n_layers - 1}, {"head", 0}}}};
}

// Writes <root>/<name>/ like a trained and analysed run (GPT-2: an HF-style dir). Returns the dir.
inline std::string write_run(const std::string& root, const FixtureShape& s) {
  std::mt19937 rng(s.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::string dir = root + "/" + s.name;
  make_dirs(dir);
  if (s.gpt2) {
    write_file_atomic(dir + "/config.json",
                      json{{"model_type", "gpt2"}, {"n_layer", s.n_layers}, {"n_head", s.n_heads}, {"n_embd", s.d_model},
                           {"n_positions", s.n_ctx}, {"vocab_size", s.d_vocab}, {"layer_norm_epsilon", 1e-5}}
                          .dump(2));
  } else {
    make_dirs(dir + "/model");
    json cfg = {{"n_layers", s.n_layers}, {"d_model", s.d_model}, {"n_heads", s.n_heads}, {"d_head", s.d_head},
                {"n_ctx", s.n_ctx}, {"d_vocab", s.d_vocab}, {"d_vocab_out", s.d_vocab}, {"attn_only", true},
                {"normalization_type", "LN"}, {"positional_embedding_type", "standard"}};
    write_file_atomic(dir + "/model/config.json", cfg.dump(2));
    write_safetensors(dir + "/model/model.safetensors", s);
    write_file_atomic(dir + "/train_config.json", json{{"preset", s.name}, {"model", cfg}, {"steps", s.metric_rows * 10}}.dump(2));
    std::string metrics;
    for (int i = 0; i < s.metric_rows; ++i) {
      int step = (i + 1) * 10;
      double loss = 3.5 + 6.0 / std::sqrt(1.0 + i) + 0.05 * u(rng) - (s.n_layers >= 2 && i > s.metric_rows / 2 ? 0.2 : 0.0);
      json row = {{"step", step}, {"tokens", step * 4096}, {"train_loss", std::round(loss * 1e4) / 1e4},
                  {"val_loss", i % 10 == 9 ? json(std::round((loss + 0.05) * 1e4) / 1e4) : json(nullptr)},
                  {"lr", 1e-3}, {"grad_norm", 1.0}, {"tokens_per_s", 50000}, {"elapsed_s", step * 0.08}};
      metrics += row.dump() + "\n";
    }
    write_file_atomic(dir + "/metrics.jsonl", metrics);
    if (s.n_layers >= 2 && s.snapshots > 0) write_file_atomic(dir + "/phase_change.json", make_phase(s, rng).dump());
  }
  write_file_atomic(dir + "/analysis.json", make_analysis(s, rng).dump());
  return dir;
}

// attn0l, attn1l, attn2l toys (demo-sized when `demo`), returned in that order.
inline std::vector<std::string> write_toy_runs(const std::string& root, bool demo) {
  std::vector<std::string> dirs;
  for (int L = 0; L <= 2; ++L) {
    FixtureShape s;
    s.name = "attn" + std::to_string(L) + "l";
    s.n_layers = L;
    s.seed = 10 + L;
    if (demo) {
      s.n_heads = 12, s.d_model = 192, s.d_head = 16, s.n_ctx = 256, s.d_vocab = 8192, s.metric_rows = 3000;
    }
    dirs.push_back(write_run(root, s));
  }
  return dirs;
}

inline std::string write_gpt2(const std::string& root) {
  FixtureShape s;
  s.name = "gpt2";
  s.gpt2 = true;
  s.n_layers = 12, s.n_heads = 12, s.d_model = 768, s.d_head = 64, s.n_ctx = 1024, s.d_vocab = 50257;
  s.seed = 99;
  return write_run(root, s);
}

}  // namespace circuitlab::reports::testing
