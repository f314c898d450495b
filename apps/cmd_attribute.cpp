// `circuitlab attribute`: direct logit attribution of one prediction (analysis/dla.h) -> a JSON
// file (analysis/ATTRIBUTION_JSON.md) and a one-screen table. Thin: prompt and token flags to
// model ids, then analysis::direct_logit_attribution; nothing is written before it succeeded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "analysis/attribution_json.h"
#include "analysis/dla.h"
#include "apps/cli_io.h"
#include "apps/commands.h"
#include "core/error.h"
#include "data/token_namer.h"
#include "data/tokenizer.h"
#include "models/model_dir.h"

namespace circuitlab::apps {

namespace {

struct AttributeOpts {
  std::string model, text, tokens, target, against, out;
  bool prepend_bos = true, per_position = false;
  int64_t position = -1;
  int top = 20, threads = 0;
};

// GPT-2 id -> model id (through vocab_map.json for compact models); Error naming `flag`. A prompt
// token outside a compact vocabulary reads as "other" (as in training); a target may not.
int64_t to_model_id(const models::LoadedModel& lm, int64_t gpt2_id, int64_t limit, const std::string& flag,
                    bool allow_other = false) {
  if (lm.vocab_map) {
    if (gpt2_id < 0 || gpt2_id > 0x7fffffff) fail(flag + ": id " + std::to_string(gpt2_id) + " is not a GPT-2 token id");
    const int32_t c = lm.vocab_map->to_compact(static_cast<int32_t>(gpt2_id));
    if (c == lm.vocab_map->other_id() && !allow_other)
      fail(flag + ": GPT-2 id " + std::to_string(gpt2_id) + " is outside the model's compact vocabulary (vocab_map.json)");
    return c;
  }
  if (gpt2_id < 0 || gpt2_id >= limit)
    fail(flag + ": token id " + std::to_string(gpt2_id) + " is outside the model's vocabulary (0.." +
         std::to_string(limit - 1) + ")");
  return gpt2_id;
}

// The prompt's model ids, BOS first unless --no-prepend-bos (as `circuitlab forward`).
std::vector<int64_t> prompt_ids(const AttributeOpts& o, const models::LoadedModel& lm, const data::Tokenizer& tok) {
  std::vector<int64_t> gpt2_ids;
  if (!o.text.empty()) {
    for (int32_t id : tok.encode(o.text)) gpt2_ids.push_back(id);
  } else {
    gpt2_ids = parse_token_ids(o.tokens);
  }
  if (o.prepend_bos) {
    if (!lm.vocab_map && lm.model->cfg().d_vocab <= models::kGpt2Bos)
      fail("attribute: --prepend-bos puts <|endoftext|> 50256 first, but " + o.model + " has d_vocab " +
           std::to_string(lm.model->cfg().d_vocab) + " and no vocab_map.json (use --no-prepend-bos)");
    gpt2_ids.insert(gpt2_ids.begin(), models::kGpt2Bos);
  }
  if (gpt2_ids.empty()) fail("attribute: no tokens (empty --text/--tokens and --no-prepend-bos)");
  std::vector<int64_t> ids;
  for (int64_t g : gpt2_ids) ids.push_back(to_model_id(lm, g, lm.model->cfg().d_vocab, "--tokens", /*allow_other=*/true));
  return ids;
}

// --target / --against: a GPT-2 id ("5335") or a string that is one token (" Mary").
int64_t output_token(const std::string& spec, const std::string& flag, const models::LoadedModel& lm,
                     const data::Tokenizer& tok) {
  if (spec.empty()) fail(flag + ": empty (give a token id or a one-token string like \" Mary\")");
  const bool numeric = std::all_of(spec.begin() + (spec[0] == '-' ? 1 : 0), spec.end(),
                                   [](char ch) { return ch >= '0' && ch <= '9'; }) &&
                       spec != "-";
  int64_t gpt2_id = 0;
  if (numeric) {
    gpt2_id = std::stoll(spec);
  } else {
    const std::vector<int32_t> ids = tok.encode(spec);
    if (ids.size() != 1)
      fail(flag + " '" + spec + "' is " + std::to_string(ids.size()) + " tokens, expected exactly one");
    gpt2_id = ids[0];
  }
  return to_model_id(lm, gpt2_id, lm.model->cfg().vocab_out(), flag);
}

void print_table(const analysis::DlaResult& r, const data::TokenNamer& namer, const std::vector<int64_t>& ids, int top) {
  std::string what = "logit[" + namer.str(r.target) + "]";
  if (r.against >= 0) what += " - logit[" + namer.str(r.against) + "]";
  std::printf("%s at position %lld (token '%s'): %.6f\n", what.c_str(), static_cast<long long>(r.position),
              namer.str(ids[r.position]).c_str(), r.logit);
  std::vector<const analysis::DlaComponent*> order;
  for (const auto& k : r.components) order.push_back(&k);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto* a, const auto* b) { return std::abs(a->value) > std::abs(b->value); });
  std::printf("  %-9s %5s %4s  %-28s %12s\n", "kind", "layer", "head", "name", "value");
  const size_t n = std::min(order.size(), static_cast<size_t>(std::max(top, 0)));
  for (size_t i = 0; i < n; ++i) {
    const auto& k = *order[i];
    std::printf("  %-9s %5s %4s  %-28s %12.6f\n", analysis::to_string(k.kind),
                k.layer >= 0 ? std::to_string(k.layer).c_str() : "-", k.head >= 0 ? std::to_string(k.head).c_str() : "-",
                k.name.c_str(), k.value);
  }
  if (order.size() > n) std::printf("  ... %zu more components\n", order.size() - n);
  std::printf("sum of %zu components %.6f, model logit %.6f, |difference| %.2e%s\n", r.components.size(), r.sum,
              r.logit, std::abs(r.sum - r.logit), r.has_pos_embed ? "" : " (shortformer: no pos_embed component)");
}

void run_attribute(const AttributeOpts& o) {
  set_threads(o.threads);
  if (o.tokens.empty() && o.text.empty()) fail("attribute: give --text \"...\" or --tokens \"ID ID ...\"");
  models::LoadedModel lm = models::load_model_dir(o.model);
  const data::Tokenizer tok = models::load_model_tokenizer(o.model);
  const data::TokenNamer namer(&tok, lm.vocab_map ? &*lm.vocab_map : nullptr);
  const std::vector<int64_t> ids = prompt_ids(o, lm, tok);
  analysis::DlaOptions d;
  d.position = o.position;
  d.target = output_token(o.target, "--target", lm, tok);
  if (!o.against.empty()) d.against = output_token(o.against, "--against", lm, tok);
  d.per_source = o.per_position;
  const analysis::DlaResult r = analysis::direct_logit_attribution(lm.model, ids, d);
  const nlohmann::json j = analysis::dla_json(r, ids, namer, o.model);
  if (!o.out.empty()) analysis::write_json_atomic(o.out, j);
  print_table(r, namer, ids, o.top);
  if (!o.out.empty()) std::printf("wrote %s\n", o.out.c_str());
}

}  // namespace

void register_attribution_commands(CLI::App& app) {
  auto o = std::make_shared<AttributeOpts>();
  CLI::App* cmd = app.add_subcommand(
      "attribute",
      "Direct logit attribution: what each component (embeddings, heads, MLPs, biases) writes to one logit "
      "(or logit difference) through the final LayerNorm with its scale frozen (schema: analysis/ATTRIBUTION_JSON.md)");
  cmd->add_option("--model", o->model, "Model dir (config.json + model.safetensors), toy or GPT-2")->required();
  auto* text_opt = cmd->add_option("--text", o->text, "Prompt text (the model's tokenizer)");
  auto* tok_opt = cmd->add_option("--tokens", o->tokens, "Prompt as GPT-2 token ids, e.g. \"464 3290 318\"");
  tok_opt->excludes(text_opt);
  cmd->add_flag("--prepend-bos,!--no-prepend-bos", o->prepend_bos,
                "Put <|endoftext|> (50256) in front (default on, as TransformerLens)");
  cmd->add_option("--position", o->position, "Query position (default -1: the last; negative counts from the end)");
  cmd->add_option("--target", o->target, "Token whose logit is attributed: a GPT-2 id or a one-token string like \" Mary\"")
      ->required();
  cmd->add_option("--against", o->against, "Attribute logit[target] - logit[against] instead (id or one-token string)");
  cmd->add_option("--out", o->out, "Output JSON file (written atomically)");
  cmd->add_flag("--per-position", o->per_position, "Also split each head by source position (pattern[p,s]·v_s·W_O)");
  cmd->add_option("--top", o->top, "Rows of the printed table (sorted by |value|)")->check(CLI::Range(0, 100000));
  cmd->add_option("--threads", o->threads, "Intra-op threads (0: keep the default)");
  cmd->callback([o]() { run_attribute(*o); });
}

}  // namespace circuitlab::apps
