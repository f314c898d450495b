// The lab's endpoints (see lab.h). Every forward pass on a model holds that model's mutex:
// hooks and the cache switch are per-model state, so passes on one model are serialised while
// different models serve in parallel.
#include "server/lab.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "analysis/ablation.h"
#include "analysis/logit_lens.h"
#include "analysis/patching.h"
#include "analysis/steering.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "models/model_dir.h"

namespace circuitlab::server {

using nlohmann::json;
namespace fs = std::filesystem;

struct Lab::Model {
  std::string name;
  models::LoadedModel loaded;
  std::unique_ptr<data::Tokenizer> own_tok;  // HF dirs with vocab.json + merges.txt
  const data::Tokenizer* tok = nullptr;      // own_tok or the lab's default
  std::mutex mu;
  const models::ModelConfig& cfg() const { return loaded.model->cfg(); }
  // Model id of a GPT-2 id (compact models: "other" when outside the map).
  int64_t from_gpt2(int32_t g) const {
    return loaded.vocab_map ? loaded.vocab_map->to_compact(g) : static_cast<int64_t>(g);
  }
  // GPT-2 id of a model id; -1 for the compact "other" id.
  int32_t to_gpt2(int64_t id) const {
    return loaded.vocab_map ? loaded.vocab_map->to_gpt2(static_cast<int32_t>(id)) : static_cast<int32_t>(id);
  }
};

namespace {

[[noreturn]] void bad(const std::string& msg, int status = 400) { throw BadRequest(status, msg); }

const json& field(const json& req, const char* key) {
  if (!req.is_object()) bad("request body: expected a JSON object");
  auto it = req.find(key);
  if (it == req.end()) bad(std::string("field \"") + key + "\": missing");
  return *it;
}

std::string get_string(const json& req, const char* key, int max_bytes, bool allow_empty = false) {
  const json& v = field(req, key);
  if (!v.is_string()) bad(std::string("field \"") + key + "\": expected a string");
  auto s = v.get<std::string>();
  if (s.size() > size_t(max_bytes))
    bad(std::string("field \"") + key + "\": longer than " + std::to_string(max_bytes) + " bytes", 413);
  if (s.empty() && !allow_empty) bad(std::string("field \"") + key + "\": must not be empty");
  return s;
}

double get_number(const json& req, const char* key, double def, double lo, double hi) {
  if (!req.is_object()) bad("request body: expected a JSON object");
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return def;
  if (!it->is_number()) bad(std::string("field \"") + key + "\": expected a number");
  double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    bad(std::string("field \"") + key + "\": expected a number in [" + json(lo).dump() + ", " + json(hi).dump() +
        "], got " + it->dump());
  return v;
}

int get_int(const json& req, const char* key, int def, int lo, int hi) {
  if (!req.is_object()) bad("request body: expected a JSON object");
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return def;
  if (!it->is_number_integer()) bad(std::string("field \"") + key + "\": expected an integer");
  auto v = it->get<int64_t>();
  if (v < lo || v > hi)
    bad(std::string("field \"") + key + "\": expected an integer in [" + std::to_string(lo) + ", " +
        std::to_string(hi) + "], got " + std::to_string(v));
  return static_cast<int>(v);
}

bool get_bool(const json& req, const char* key, bool def) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return def;
  if (!it->is_boolean()) bad(std::string("field \"") + key + "\": expected true or false");
  return it->get<bool>();
}

// 4 decimals keep the JSON small; the shortest round-trip print of the rounded double is short.
double r4(double x) { return std::isfinite(x) ? std::round(x * 1e4) / 1e4 : x; }
json num_or_null(double x) { return std::isfinite(x) ? json(r4(x)) : json(nullptr); }

json matrix_json(const torch::Tensor& m) {  // [R,C] -> [[...]]
  auto a = m.to(torch::kFloat).contiguous();
  auto acc = a.accessor<float, 2>();
  json rows = json::array();
  for (int64_t r = 0; r < a.size(0); ++r) {
    json row = json::array();
    for (int64_t c = 0; c < a.size(1); ++c) row.push_back(num_or_null(acc[r][c]));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<analysis::HeadRef> parse_heads(const json& v, const models::ModelConfig& cfg, const char* key) {
  if (!v.is_array()) bad(std::string("field \"") + key + "\": expected an array of {\"layer\", \"head\"} or [layer, head]");
  std::vector<analysis::HeadRef> heads;
  for (const auto& e : v) {
    analysis::HeadRef h;
    if (e.is_array() && e.size() == 2 && e[0].is_number_integer() && e[1].is_number_integer()) {
      h.layer = e[0].get<int>();
      h.head = e[1].get<int>();
    } else if (e.is_object() && e.contains("layer") && e.contains("head") && e["layer"].is_number_integer() &&
               e["head"].is_number_integer()) {
      h.layer = e["layer"].get<int>();
      h.head = e["head"].get<int>();
    } else {
      bad(std::string("field \"") + key + "\": each head must be {\"layer\": int, \"head\": int} or [layer, head], got " +
          e.dump());
    }
    if (h.layer < 0 || h.layer >= cfg.n_layers)
      bad("unknown layer " + std::to_string(h.layer) + " in \"" + key + "\" (model has " +
          std::to_string(cfg.n_layers) + " layers)");
    if (h.head < 0 || h.head >= cfg.n_heads)
      bad("unknown head " + std::to_string(h.head) + " in \"" + key + "\" (model has " + std::to_string(cfg.n_heads) +
          " heads per layer)");
    if (std::find(heads.begin(), heads.end(), h) == heads.end()) heads.push_back(h);
  }
  return heads;
}

analysis::SamplingParams parse_sampling(const json& req, const LabLimits& lim) {
  analysis::SamplingParams p;
  p.max_new_tokens = get_int(req, "max_new_tokens", 20, 1, lim.max_new_tokens);
  p.temperature = get_number(req, "temperature", 1.0, 0.0, 100.0);
  p.top_k = get_int(req, "top_k", 0, 0, 1 << 20);
  p.top_p = get_number(req, "top_p", 1.0, 1e-6, 1.0);
  p.seed = static_cast<uint64_t>(get_number(req, "seed", 0, 0, 9007199254740991.0));
  return p;
}

torch::Tensor to_tensor(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0);  // [1,T]
}

std::string model_name_from_dir(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "model" && p.has_parent_path() && !p.parent_path().filename().empty())
    return p.parent_path().filename().string();
  return p.filename().string();
}

// Top-k of softmax(logits [T,V]) per position as [[{id, gpt2_id, str, prob}]].
}  // namespace

Lab::Lab(const std::string& tokenizer_dir, LabLimits limits) : limits_(limits) {
  if (tokenizer_dir.empty())
    tok_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load_default());
  else
    tok_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load((fs::path(tokenizer_dir) / "encoder.json").string(),
                                                                   (fs::path(tokenizer_dir) / "vocab.bpe").string()));
}

Lab::~Lab() = default;

std::string Lab::add_model(const std::string& dir, const std::string& name_in) {
  auto m = std::make_unique<Model>();
  m->loaded = models::load_model_dir(dir);
  m->loaded.model->eval();
  if (fs::exists(fs::path(dir) / "vocab.json") && fs::exists(fs::path(dir) / "merges.txt"))
    m->own_tok = std::make_unique<data::Tokenizer>(models::load_model_tokenizer(dir));
  m->tok = m->own_tok ? m->own_tok.get() : tok_.get();
  std::string name = name_in.empty() ? model_name_from_dir(dir) : name_in;
  std::lock_guard<std::mutex> lk(models_mu_);
  std::string unique = name;
  for (int k = 2;; ++k) {
    bool taken = false;
    for (const auto& o : models_) taken |= o->name == unique;
    if (!taken) break;
    unique = name + "-" + std::to_string(k);
  }
  m->name = unique;
  models_.push_back(std::move(m));
  return unique;
}

std::vector<std::string> Lab::add_default_models(const std::string& runs_dir) {
  std::vector<std::string> names;
  if (!fs::is_directory(runs_dir)) return names;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(runs_dir))
    if (e.is_directory() && fs::exists(e.path() / "model" / "config.json")) dirs.push_back(e.path() / "model");
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    try {
      names.push_back(add_model(d.string()));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "circuitlab serve: skipping %s: %s\n", d.string().c_str(), e.what());
    }
  }
  return names;
}

size_t Lab::n_models() const {
  std::lock_guard<std::mutex> lk(models_mu_);
  return models_.size();
}

Lab::Model& Lab::model_for(const json& req) {
  if (!req.is_object()) bad("request body: expected a JSON object");
  std::lock_guard<std::mutex> lk(models_mu_);
  if (models_.empty()) bad("no model is loaded (train one with `./run demo` or get GPT-2 with `./run fetch-gpt2`)", 404);
  auto it = req.find("model");
  if (it == req.end() || it->is_null()) return *models_.front();
  if (!it->is_string()) bad("field \"model\": expected a model name string");
  for (auto& m : models_)
    if (m->name == it->get<std::string>()) return *m;
  std::string names;
  for (auto& m : models_) names += (names.empty() ? "" : ", ") + m->name;
  bad("field \"model\": unknown model \"" + it->get<std::string>() + "\" (loaded: " + names + ")", 404);
}

std::vector<int64_t> Lab::encode(const Model& m, const std::string& text, bool prepend_bos) {
  std::vector<int32_t> g;
  {
    std::lock_guard<std::mutex> lk(tok_mu_);
    g = m.tok->encode(text);
  }
  std::vector<int64_t> ids;
  ids.reserve(g.size() + 1);
  if (prepend_bos) ids.push_back(m.from_gpt2(data::kEndOfText));
  for (int32_t t : g) ids.push_back(m.from_gpt2(t));
  const int64_t V = m.cfg().d_vocab;
  for (int64_t id : ids)
    if (id < 0 || id >= V)
      bad("token id " + std::to_string(id) + " is outside model \"" + m.name + "\"'s vocabulary of " +
          std::to_string(V) + " (the model has no vocab_map.json to map GPT-2 ids)");
  if (ids.size() > size_t(m.cfg().n_ctx))
    bad("prompt is " + std::to_string(ids.size()) + " tokens, longer than model \"" + m.name + "\"'s context of " +
        std::to_string(m.cfg().n_ctx) + " tokens");
  return ids;
}

std::string Lab::token_str(const Model& m, int64_t id) const {
  const int32_t g = m.to_gpt2(id);
  if (g < 0) return "\u27E8other\u27E9";
  std::lock_guard<std::mutex> lk(tok_mu_);
  if (g >= m.tok->vocab_size()) return "\u27E8" + std::to_string(g) + "\u27E9";
  return m.tok->token_str(g);
}

std::string Lab::decode(const Model& m, const std::vector<int64_t>& ids) const {
  std::string out;
  std::vector<int32_t> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::lock_guard<std::mutex> lk(tok_mu_);
    out += m.tok->decode(run);
    run.clear();
  };
  for (int64_t id : ids) {
    const int32_t g = m.to_gpt2(id);
    if (g < 0 || g >= m.tok->vocab_size()) {
      flush();
      out += token_str(m, id);
    } else {
      run.push_back(g);
    }
  }
  flush();
  return out;
}

json Lab::token_list(const Model& m, const std::vector<int64_t>& ids) const {
  json arr = json::array();
  for (int64_t id : ids) arr.push_back({{"id", id}, {"gpt2_id", m.to_gpt2(id)}, {"str", token_str(m, id)}});
  return arr;
}

json Lab::models() const {
  std::lock_guard<std::mutex> lk(models_mu_);
  json arr = json::array();
  bool gpt2 = false;
  for (const auto& m : models_) {
    const auto& c = m->cfg();
    gpt2 |= c.family == "gpt2";
    arr.push_back({{"name", m->name},
                   {"dir", m->loaded.dir},
                   {"family", c.family},
                   {"n_layers", c.n_layers},
                   {"n_heads", c.n_heads},
                   {"d_model", c.d_model},
                   {"d_head", c.d_head},
                   {"n_ctx", c.n_ctx},
                   {"d_vocab", c.d_vocab},
                   {"attn_only", c.attn_only},
                   {"compact_vocab", m->loaded.vocab_map.has_value()}});
  }
  json out = {{"models", arr}, {"gpt2_loaded", gpt2}};
  if (!gpt2)
    out["gpt2_hint"] =
        "No GPT-2 model is loaded. Get the weights with `./run fetch-gpt2` (writes models/gpt2 in the Hugging Face "
        "layout), then start `circuitlab serve --model models/gpt2` (add --model runs/attn2l/model etc. to keep the "
        "toys).";
  if (models_.empty())
    out["toy_hint"] = "No toy model found under runs/*/model: train the demo models with `./run demo`.";
  return out;
}

json Lab::tokenize(const json& req) {
  Model& m = model_for(req);
  const auto text = get_string(req, "text", limits_.max_text_bytes, /*allow_empty=*/true);
  const bool bos = get_bool(req, "prepend_bos", true);
  std::vector<int32_t> g;
  {
    std::lock_guard<std::mutex> lk(tok_mu_);
    g = m.tok->encode(text);
  }
  std::vector<int64_t> ids;
  if (bos) ids.push_back(m.from_gpt2(data::kEndOfText));
  for (auto t : g) ids.push_back(m.from_gpt2(t));
  return {{"model", m.name},
          {"tokens", token_list(m, ids)},
          {"n_tokens", ids.size()},
          {"n_ctx", m.cfg().n_ctx},
          {"fits", ids.size() <= size_t(m.cfg().n_ctx)}};
}

namespace {

json top_predictions(const torch::Tensor& logits, int k, const std::function<json(int64_t)>& tok) {  // [T,V]
  auto probs = torch::softmax(logits.to(torch::kFloat), -1);
  auto [vals, idx] = probs.topk(std::min<int64_t>(k, probs.size(-1)), -1);  // [T,k]
  auto va = vals.accessor<float, 2>();
  auto ia = idx.accessor<int64_t, 2>();
  json out = json::array();
  for (int64_t t = 0; t < vals.size(0); ++t) {
    json row = json::array();
    for (int64_t j = 0; j < vals.size(1); ++j) {
      json e = tok(ia[t][j]);
      e["prob"] = r4(va[t][j]);
      row.push_back(std::move(e));
    }
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace

json Lab::run(const json& req) {
  Model& m = model_for(req);
  const auto text = get_string(req, "text", limits_.max_text_bytes);
  const auto ids = encode(m, text, get_bool(req, "prepend_bos", true));
  const int k = get_int(req, "top_k", 5, 1, limits_.max_top_k);
  const int lens_k = get_int(req, "lens_top_k", 3, 1, limits_.max_top_k);
  const bool want_attention = get_bool(req, "attention", true);
  const auto& cfg = m.cfg();
  const int64_t T = static_cast<int64_t>(ids.size());
  std::vector<analysis::HeadRef> heads;
  std::string kind_s = "zero";
  if (req.contains("ablate") && !req["ablate"].is_null()) {
    const json& a = req["ablate"];
    if (a.is_array()) {
      heads = parse_heads(a, cfg, "ablate");
    } else if (a.is_object()) {
      heads = parse_heads(field(a, "heads"), cfg, "ablate.heads");
      if (a.contains("kind")) {
        if (!a["kind"].is_string()) bad("field \"ablate.kind\": expected \"zero\" or \"mean\"");
        kind_s = a["kind"].get<std::string>();
      }
    } else {
      bad("field \"ablate\": expected {\"heads\": [...], \"kind\": \"zero\"|\"mean\"} or a list of heads");
    }
  }
  if (kind_s != "zero" && kind_s != "mean") bad("field \"ablate.kind\": expected \"zero\" or \"mean\", got \"" + kind_s + "\"");
  if (want_attention && int64_t(cfg.n_layers) * cfg.n_heads * T * T > limits_.max_attention_values)
    bad("attention for " + std::to_string(T) + " tokens is too large to return; send \"attention\": false or a shorter prompt",
        413);

  auto tokens = to_tensor(ids);
  torch::Tensor logits, lens_logits_unused;
  models::ActivationCache cache;
  std::lock_guard<std::mutex> lk(m.mu);
  torch::NoGradGuard ng;
  {
    models::HookGuard guard(m.loaded.model);
    if (!heads.empty())
      for (auto& [name, fn] : analysis::head_ablation_hooks(m.loaded.model, tokens, heads,
                                                            analysis::ablation_kind_from_string(kind_s)))
        guard.add(name, fn);
    auto res = models::run_with_cache(m.loaded.model, tokens, [&](const std::string& n) {
      if (analysis::residual_stage_filter(cfg, n)) return true;
      static const std::string pat = ".attn.hook_pattern";
      return want_attention && n.size() > pat.size() && n.compare(n.size() - pat.size(), pat.size(), pat) == 0;
    });
    logits = res.first;
    cache = std::move(res.second);
  }
  auto tokjson = [&](int64_t id) { return json{{"id", id}, {"str", token_str(m, id)}}; };
  json out;
  out["model"] = m.name;
  out["tokens"] = token_list(m, ids);
  out["predictions"] = top_predictions(logits[0], k, tokjson);
  // Probability the model gave to the token that actually comes next (null at the end).
  {
    auto probs = torch::softmax(logits[0].to(torch::kFloat), -1);  // [T,V]
    json nxt = json::array();
    for (int64_t t = 0; t < T; ++t) nxt.push_back(t + 1 < T ? json(r4(probs[t][ids[t + 1]].item<float>())) : json(nullptr));
    out["next_token_prob"] = nxt;
  }
  out["loss"] = T >= 2 ? json(r4(analysis::next_token_loss(logits, tokens))) : json(nullptr);
  out["ablated"] = json::array();
  for (auto& h : heads) out["ablated"].push_back({h.layer, h.head});
  out["ablation_kind"] = kind_s;
  if (want_attention) {
    json att = json::array();
    for (int l = 0; l < cfg.n_layers; ++l) {
      auto p = cache.at("blocks." + std::to_string(l) + ".attn.hook_pattern")[0].to(torch::kFloat).contiguous();  // [H,T,T]
      auto pa = p.accessor<float, 3>();
      json layer = json::array();
      for (int64_t h = 0; h < p.size(0); ++h) {
        json mat = json::array();
        for (int64_t q = 0; q < T; ++q) {
          json row = json::array();
          for (int64_t kk = 0; kk <= q; ++kk) row.push_back(r4(pa[h][q][kk]));  // causal: zeros above the diagonal omitted
          mat.push_back(std::move(row));
        }
        layer.push_back(std::move(mat));
      }
      att.push_back(std::move(layer));
    }
    out["attention"] = std::move(att);  // [L][H][T_query][0..query] (lower triangle)
  }
  auto stages = analysis::residual_stages(cfg, cache);  // [L+1,1,T,D]
  out["stage_labels"] = analysis::residual_stage_labels(cfg);
  out["resid_norms"] = matrix_json(stages.select(1, 0).to(torch::kFloat).norm(2, /*dim=*/-1));  // [L+1,T]
  json lens = json::array();
  for (int64_t s = 0; s < stages.size(0); ++s) {
    auto ll = analysis::apply_final_ln_and_unembed(m.loaded.model, stages[s][0]);  // [T,V]
    lens.push_back(top_predictions(ll, lens_k, tokjson));
  }
  out["logit_lens"] = std::move(lens);  // [L+1][T][k]
  return out;
}

json Lab::ablate(const json& req) {
  Model& m = model_for(req);
  const auto text = get_string(req, "text", limits_.max_text_bytes);
  const auto ids = encode(m, text, get_bool(req, "prepend_bos", true));
  const auto heads = parse_heads(field(req, "heads"), m.cfg(), "heads");
  std::string kind_s = "zero";
  if (req.contains("kind")) {
    if (!req["kind"].is_string()) bad("field \"kind\": expected \"zero\" or \"mean\"");
    kind_s = req["kind"].get<std::string>();
  }
  if (kind_s != "zero" && kind_s != "mean") bad("field \"kind\": expected \"zero\" or \"mean\", got \"" + kind_s + "\"");
  const int k = get_int(req, "top_k", 3, 1, limits_.max_top_k);
  if (ids.size() < 2) bad("field \"text\": need at least 2 tokens to measure a loss");
  auto tokens = to_tensor(ids);
  torch::Tensor clean, ablated;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    torch::NoGradGuard ng;
    clean = m.loaded.model->forward(tokens);
    ablated = analysis::run_with_ablated_heads(m.loaded.model, tokens, heads, analysis::ablation_kind_from_string(kind_s));
  }
  auto tokjson = [&](int64_t id) { return json{{"id", id}, {"str", token_str(m, id)}}; };
  auto cl = analysis::next_token_losses(clean, tokens)[0];    // [T-1]
  auto al = analysis::next_token_losses(ablated, tokens)[0];  // [T-1]
  auto pc = top_predictions(clean[0], k, tokjson);
  auto pa = top_predictions(ablated[0], k, tokjson);
  auto kl = (torch::softmax(clean[0], -1) * (torch::log_softmax(clean[0], -1) - torch::log_softmax(ablated[0], -1)))
                .sum(-1);  // [T] KL(clean || ablated)
  json positions = json::array();
  int changed = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const bool ch = pc[t][0]["id"] != pa[t][0]["id"];
    changed += ch;
    json p = {{"pos", t},
              {"token", token_str(m, ids[t])},
              {"clean_top", pc[t]},
              {"ablated_top", pa[t]},
              {"top1_changed", ch},
              {"kl", r4(kl[t].item<double>())}};
    if (t + 1 < ids.size()) {
      p["clean_loss"] = r4(cl[t].item<double>());
      p["ablated_loss"] = r4(al[t].item<double>());
    }
    positions.push_back(std::move(p));
  }
  const double lc = cl.mean().item<double>(), la = al.mean().item<double>();
  json hs = json::array();
  for (auto& h : heads) hs.push_back({h.layer, h.head});
  return {{"model", m.name},   {"tokens", token_list(m, ids)}, {"heads", hs},
          {"kind", kind_s},    {"clean_loss", r4(lc)},         {"ablated_loss", r4(la)},
          {"loss_delta", r4(la - lc)}, {"n_top1_changed", changed}, {"positions", positions}};
}

json Lab::patch(const json& req) {
  Model& m = model_for(req);
  const bool bos = get_bool(req, "prepend_bos", true);
  const auto clean_ids = encode(m, get_string(req, "clean", limits_.max_text_bytes), bos);
  const auto corrupt_ids = encode(m, get_string(req, "corrupted", limits_.max_text_bytes), bos);
  if (clean_ids.size() != corrupt_ids.size())
    bad("clean and corrupted prompts must have the same number of tokens (clean " + std::to_string(clean_ids.size()) +
        ", corrupted " + std::to_string(corrupt_ids.size()) + ")");
  if (clean_ids.size() > size_t(limits_.max_patch_tokens))
    bad("patching prompts are limited to " + std::to_string(limits_.max_patch_tokens) + " tokens", 413);
  auto answer = [&](const char* key) -> int64_t {
    const auto s = get_string(req, key, 200);
    std::vector<int32_t> g;
    {
      std::lock_guard<std::mutex> lk(tok_mu_);
      g = m.tok->encode(s);
    }
    if (g.size() != 1)
      bad(std::string("field \"") + key + "\": \"" + s + "\" must be exactly one token (it is " +
          std::to_string(g.size()) + "); mind the leading space, e.g. \" Mary\"");
    const int64_t id = m.from_gpt2(g[0]);
    if (m.loaded.vocab_map && id == m.loaded.vocab_map->other_id())
      bad(std::string("field \"") + key + "\": \"" + s + "\" is outside model \"" + m.name + "\"'s compact vocabulary");
    if (id >= m.cfg().vocab_out()) bad(std::string("field \"") + key + "\": token outside the model's output vocabulary");
    return id;
  };
  const int64_t correct = answer("answer_correct"), incorrect = answer("answer_incorrect");
  std::string target_s = "resid_pre";
  if (req.contains("target")) {
    if (!req["target"].is_string()) bad("field \"target\": expected a string");
    target_s = req["target"].get<std::string>();
  }
  analysis::PatchTarget target;
  try {
    target = analysis::patch_target_from_string(target_s);
  } catch (const Error& e) {
    bad(std::string("field \"target\": ") + e.what());
  }
  const auto& cfg = m.cfg();
  if (cfg.n_layers == 0) bad("model \"" + m.name + "\" has no layers to patch");
  const int64_t T = static_cast<int64_t>(clean_ids.size());
  const int64_t cells = target == analysis::PatchTarget::Head       ? int64_t(cfg.n_layers) * cfg.n_heads
                        : target == analysis::PatchTarget::HeadPos ? int64_t(cfg.n_layers) * cfg.n_heads * T
                                                                     : int64_t(cfg.n_layers) * T;
  if (cells > limits_.max_patch_cells)
    bad("this patching run needs " + std::to_string(cells) + " patched passes, more than the limit of " +
            std::to_string(limits_.max_patch_cells) + "; use a shorter prompt or another target",
        413);
  analysis::PatchResult r;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    r = analysis::activation_patching(m.loaded.model, to_tensor(clean_ids), to_tensor(corrupt_ids), correct, incorrect,
                                      target);
  }
  json rows = json::array(), cols = json::array();
  for (int l = 0; l < cfg.n_layers; ++l) {
    if (target == analysis::PatchTarget::HeadPos)
      for (int h = 0; h < cfg.n_heads; ++h) rows.push_back("L" + std::to_string(l) + "H" + std::to_string(h));
    else
      rows.push_back("L" + std::to_string(l));
  }
  if (target == analysis::PatchTarget::Head)
    for (int h = 0; h < cfg.n_heads; ++h) cols.push_back("H" + std::to_string(h));
  else
    for (int64_t t = 0; t < T; ++t) cols.push_back(std::to_string(t) + ":" + token_str(m, clean_ids[t]));
  return {{"model", m.name},
          {"target", target_s},
          {"clean_tokens", token_list(m, clean_ids)},
          {"corrupted_tokens", token_list(m, corrupt_ids)},
          {"answer_correct", {{"id", correct}, {"str", token_str(m, correct)}}},
          {"answer_incorrect", {{"id", incorrect}, {"str", token_str(m, incorrect)}}},
          {"clean_logit_diff", r4(r.clean_logit_diff)},
          {"corrupted_logit_diff", r4(r.corrupt_logit_diff)},
          {"rows", rows},
          {"cols", cols},
          {"recovery", matrix_json(r.recovery)},
          {"patched_logit_diff", matrix_json(r.patched_logit_diff)}};
}

json Lab::steer(const json& req) {
  Model& m = model_for(req);
  const bool bos = get_bool(req, "prepend_bos", true);
  const auto prompt = encode(m, get_string(req, "prompt", limits_.max_text_bytes), bos);
  const auto add = encode(m, get_string(req, "prompt_add", limits_.max_text_bytes), bos);
  const auto sub = encode(m, get_string(req, "prompt_sub", limits_.max_text_bytes, /*allow_empty=*/true), bos);
  const auto& cfg = m.cfg();
  if (cfg.n_layers == 0) bad("model \"" + m.name + "\" has no layers to steer");
  const int layer = get_int(req, "layer", std::min(1, cfg.n_layers - 1), 0, cfg.n_layers);
  const double coef = get_number(req, "coefficient", 4.0, -1000.0, 1000.0);
  const auto sp = parse_sampling(req, limits_);
  const int64_t pad = m.from_gpt2(220);  // " ", the ActAdd paper's pad token
  std::vector<int64_t> plain, steered;
  torch::Tensor vec;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    vec = analysis::actadd_vector(m.loaded.model, add, sub.empty() ? std::vector<int64_t>{pad} : sub, layer, pad);
    plain = analysis::generate(m.loaded.model, prompt, sp);
    steered = analysis::generate(m.loaded.model, prompt, sp,
                                 {{analysis::actadd_hook_name(cfg, layer), analysis::steering_hook(vec, coef)}});
  }
  json norms = json::array();
  auto n = vec.norm(2, -1);
  for (int64_t i = 0; i < n.size(0); ++i) norms.push_back(r4(n[i].item<double>()));
  const std::string prompt_text = decode(m, bos ? std::vector<int64_t>(prompt.begin() + 1, prompt.end()) : prompt);
  return {{"model", m.name},
          {"layer", layer},
          {"hook", analysis::actadd_hook_name(cfg, layer)},
          {"coefficient", coef},
          {"prompt", prompt_text},
          {"vector_norms", norms},
          {"seed", sp.seed},
          {"unsteered", {{"text", decode(m, plain)}, {"tokens", token_list(m, plain)}}},
          {"steered", {{"text", decode(m, steered)}, {"tokens", token_list(m, steered)}}}};
}

json Lab::generate(const json& req) {
  Model& m = model_for(req);
  const bool bos = get_bool(req, "prepend_bos", true);
  const auto prompt = encode(m, get_string(req, "prompt", limits_.max_text_bytes), bos);
  const auto sp = parse_sampling(req, limits_);
  std::vector<int64_t> out;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    out = analysis::generate(m.loaded.model, prompt, sp);
  }
  return {{"model", m.name}, {"seed", sp.seed}, {"text", decode(m, out)}, {"tokens", token_list(m, out)}};
}

json Lab::handle(const std::string& endpoint, const json& req) {
  try {
    if (endpoint == "models") return models();
    if (endpoint == "tokenize") return tokenize(req);
    if (endpoint == "run") return run(req);
    if (endpoint == "ablate") return ablate(req);
    if (endpoint == "patch") return patch(req);
    if (endpoint == "steer") return steer(req);
    if (endpoint == "generate") return generate(req);
  } catch (const Error& e) {  // analysis/models reject an input: the client's mistake
    throw BadRequest(400, e.what());
  }
  bad("unknown endpoint \"" + endpoint + "\"", 404);
}

}  // namespace circuitlab::server
