// Hook point names: the one function that spells them (TransformerLens's get_act_name), the
// typed helpers analyses use, and the parser that reads a name back into (kind, layer).
// DESIGN.md contract 2: these strings key the cache, the hooks, patching and the server's JSON.
// Not the registry of one model's points (HookedTransformer::hook_names lists those).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace circuitlab::models {

// The hook points of one block, in forward order (HookedTransformer's registry ids).
enum class LayerHook : int {
  ResidPre, Ln1Scale, Ln1Normalized, Q, K, V, AttnScores, Pattern, Z, Result, AttnOut,
  ResidMid, Ln2Scale, Ln2Normalized, MlpPre, MlpPost, MlpOut, ResidPost, Count
};
// The hook points outside the blocks: embeddings before, the final LayerNorm after.
enum class GlobalHook : int { Embed, PosEmbed, LnFinalScale, LnFinalNormalized, Count };

// "blocks.{layer}.<path>", e.g. (Pattern, 1) -> "blocks.1.attn.hook_pattern". Error for layer < 0.
std::string hook_name(LayerHook h, int layer);
// "hook_embed", "hook_pos_embed", "ln_final.hook_scale", "ln_final.hook_normalized".
std::string hook_name(GlobalHook h);

// TransformerLens get_act_name: a short name (+ layer, + layer_type for the LayerNorm points)
// to the full name. layer < 0 is TL's None.
//   hook_name("pattern", 0)            -> "blocks.0.attn.hook_pattern"   ("attn" is an alias)
//   hook_name("resid_pre", 2)          -> "blocks.2.hook_resid_pre"
//   hook_name("pre", 1)                -> "blocks.1.mlp.hook_pre"        ("mlp_pre" too)
//   hook_name("scale", 0, "ln1")       -> "blocks.0.ln1.hook_scale"
//   hook_name("normalized")            -> "ln_final.hook_normalized"
//   hook_name("embed")                 -> "hook_embed"
// A full name (no layer, no layer_type) is returned as is when it parses. Anything else:
// circuitlab::Error naming the short name.
std::string hook_name(std::string_view short_name, int layer = -1, std::string_view layer_type = {});

// A parsed full name: its short kind ("pattern", "scale", ...), its layer (-1 outside blocks)
// and, for the LayerNorm points, "ln1" / "ln2" / "ln_final" ("" otherwise).
struct HookId {
  std::string kind;
  int layer = -1;
  std::string layer_type;
};
// False (and `out` untouched) when `full` is no hook name hook_name() can produce.
bool parse_hook_name(std::string_view full, HookId* out);
// The short kind of a full name ("blocks.3.attn.hook_z" -> "z"); "" when it is not a hook name.
std::string hook_kind(std::string_view full);

// Every short kind hook_name() accepts with a layer (and without), for listings and tests.
std::vector<std::string> layer_hook_kinds();
std::vector<std::string> global_hook_kinds();

// Typed helpers for the names analyses assemble most.
namespace hooks {
inline std::string embed() { return hook_name(GlobalHook::Embed); }
inline std::string pos_embed() { return hook_name(GlobalHook::PosEmbed); }
inline std::string resid_pre(int l) { return hook_name(LayerHook::ResidPre, l); }
inline std::string resid_mid(int l) { return hook_name(LayerHook::ResidMid, l); }
inline std::string resid_post(int l) { return hook_name(LayerHook::ResidPost, l); }
inline std::string q(int l) { return hook_name(LayerHook::Q, l); }
inline std::string k(int l) { return hook_name(LayerHook::K, l); }
inline std::string v(int l) { return hook_name(LayerHook::V, l); }
inline std::string attn_scores(int l) { return hook_name(LayerHook::AttnScores, l); }
inline std::string pattern(int l) { return hook_name(LayerHook::Pattern, l); }
inline std::string z(int l) { return hook_name(LayerHook::Z, l); }
inline std::string result(int l) { return hook_name(LayerHook::Result, l); }
inline std::string attn_out(int l) { return hook_name(LayerHook::AttnOut, l); }
inline std::string mlp_pre(int l) { return hook_name(LayerHook::MlpPre, l); }
inline std::string mlp_post(int l) { return hook_name(LayerHook::MlpPost, l); }
inline std::string mlp_out(int l) { return hook_name(LayerHook::MlpOut, l); }
// A cache filter keeping every layer's point of one kind: is_kind("pattern")(name).
struct is_kind {
  std::string kind;
  explicit is_kind(std::string k) : kind(std::move(k)) {}
  bool operator()(const std::string& name) const { return hook_kind(name) == kind; }
};
}  // namespace hooks

}  // namespace circuitlab::models
