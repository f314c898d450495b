// Hook names (see hook_names.h): one table per scope, indexed by the enums, read both ways.
#include "models/hook_names.h"

#include <cctype>

#include "core/error.h"

namespace circuitlab::models {

namespace {

// kind: TL's short name; layer_type: "ln1"/"ln2" for the LayerNorm points; path: after "blocks.{l}.".
struct LayerEntry {
  const char* kind;
  const char* layer_type;
  const char* path;
};
constexpr LayerEntry kLayer[static_cast<int>(LayerHook::Count)] = {
    {"resid_pre", "", "hook_resid_pre"},
    {"scale", "ln1", "ln1.hook_scale"},
    {"normalized", "ln1", "ln1.hook_normalized"},
    {"q", "", "attn.hook_q"},
    {"k", "", "attn.hook_k"},
    {"v", "", "attn.hook_v"},
    {"attn_scores", "", "attn.hook_attn_scores"},
    {"pattern", "", "attn.hook_pattern"},
    {"z", "", "attn.hook_z"},
    {"result", "", "attn.hook_result"},
    {"attn_out", "", "hook_attn_out"},
    {"resid_mid", "", "hook_resid_mid"},
    {"scale", "ln2", "ln2.hook_scale"},
    {"normalized", "ln2", "ln2.hook_normalized"},
    {"pre", "", "mlp.hook_pre"},
    {"post", "", "mlp.hook_post"},
    {"mlp_out", "", "hook_mlp_out"},
    {"resid_post", "", "hook_resid_post"},
};

struct GlobalEntry {
  const char* kind;
  const char* layer_type;
  const char* name;
};
constexpr GlobalEntry kGlobal[static_cast<int>(GlobalHook::Count)] = {
    {"embed", "", "hook_embed"},
    {"pos_embed", "", "hook_pos_embed"},
    {"scale", "ln_final", "ln_final.hook_scale"},
    {"normalized", "ln_final", "ln_final.hook_normalized"},
};

// TransformerLens's act_name_alias (get_act_name).
std::string_view canonical_kind(std::string_view k) {
  if (k == "attn") return "pattern";
  if (k == "attn_logits") return "attn_scores";
  if (k == "key") return "k";
  if (k == "query") return "q";
  if (k == "value") return "v";
  if (k == "mlp_pre") return "pre";
  if (k == "mlp_post") return "post";
  return k;
}

bool is_ln_kind(std::string_view k) { return k == "scale" || k == "normalized"; }

[[noreturn]] void unknown(std::string_view short_name, int layer, std::string_view layer_type) {
  std::string msg = "unknown hook point '" + std::string(short_name) + "'";
  if (layer >= 0) msg += " for layer " + std::to_string(layer);
  if (!layer_type.empty()) msg += " (layer_type '" + std::string(layer_type) + "')";
  msg += ": expected a TransformerLens short name (";
  for (const auto& k : layer_hook_kinds()) msg += k + ", ";
  msg += "embed, pos_embed; scale/normalized with ln1, ln2 or ln_final) or a full name such as "
         "'blocks.0.attn.hook_z'";
  fail(msg);
}

}  // namespace

std::string hook_name(LayerHook h, int layer) {
  const int i = static_cast<int>(h);
  if (i < 0 || i >= static_cast<int>(LayerHook::Count)) fail("hook_name: invalid LayerHook " + std::to_string(i));
  if (layer < 0) fail("hook_name: layer must be >= 0, got " + std::to_string(layer));
  return "blocks." + std::to_string(layer) + "." + kLayer[i].path;
}

std::string hook_name(GlobalHook h) {
  const int i = static_cast<int>(h);
  if (i < 0 || i >= static_cast<int>(GlobalHook::Count)) fail("hook_name: invalid GlobalHook " + std::to_string(i));
  return kGlobal[i].name;
}

std::string hook_name(std::string_view short_name, int layer, std::string_view layer_type) {
  if (layer < 0 && layer_type.empty()) {
    HookId id;
    if (parse_hook_name(short_name, &id)) return std::string(short_name);
  }
  const std::string_view kind = canonical_kind(short_name);
  if (layer < 0) {
    // TL: the LayerNorm points without a layer are ln_final's.
    const std::string_view lt = layer_type.empty() && is_ln_kind(kind) ? std::string_view("ln_final") : layer_type;
    for (const auto& g : kGlobal)
      if (kind == g.kind && lt == g.layer_type) return g.name;
    unknown(short_name, layer, layer_type);
  }
  for (int i = 0; i < static_cast<int>(LayerHook::Count); ++i)
    if (kind == kLayer[i].kind && layer_type == kLayer[i].layer_type) return hook_name(static_cast<LayerHook>(i), layer);
  unknown(short_name, layer, layer_type);
}

bool parse_hook_name(std::string_view full, HookId* out) {
  for (const auto& g : kGlobal)
    if (full == g.name) {
      *out = HookId{g.kind, -1, g.layer_type};
      return true;
    }
  static constexpr std::string_view kBlocks = "blocks.";
  if (full.substr(0, kBlocks.size()) != kBlocks) return false;
  size_t p = kBlocks.size(), digits = 0;
  int layer = 0;
  while (p < full.size() && std::isdigit(static_cast<unsigned char>(full[p]))) {
    if (digits == 0 && full[p] == '0' && p + 1 < full.size() && std::isdigit(static_cast<unsigned char>(full[p + 1])))
      return false;  // "blocks.01." is not a name we write
    if (++digits > 6) return false;
    layer = layer * 10 + (full[p] - '0');
    ++p;
  }
  if (digits == 0 || p >= full.size() || full[p] != '.') return false;
  const std::string_view path = full.substr(p + 1);
  for (const auto& e : kLayer)
    if (path == e.path) {
      *out = HookId{e.kind, layer, e.layer_type};
      return true;
    }
  return false;
}

std::string hook_kind(std::string_view full) {
  HookId id;
  return parse_hook_name(full, &id) ? id.kind : std::string();
}

std::vector<std::string> layer_hook_kinds() {
  std::vector<std::string> r;
  for (const auto& e : kLayer)
    if (std::string_view(e.layer_type) != "ln2") r.emplace_back(e.kind);  // scale/normalized once
  return r;
}

std::vector<std::string> global_hook_kinds() {
  std::vector<std::string> r;
  for (const auto& g : kGlobal) r.emplace_back(g.kind);
  return r;
}

}  // namespace circuitlab::models
