// Unit tests of models/hook_names.h: the names HookedTransformer lists are exactly the names
// hook_name() produces for that shape (both directions), TransformerLens get_act_name's
// spellings and aliases, the parser's round trip, and errors for names that are none.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "models/hook_names.h"
#include "models/hooked_transformer.h"

namespace circuitlab::models {
namespace {

// A tiny model; with LayerNorm and MLP blocks it has every kind of hook point.
ModelConfig full_cfg(int layers, bool ln, bool attn_only) {
  ModelConfig c;
  c.n_layers = layers, c.d_model = 8, c.n_heads = 2, c.d_head = 4, c.n_ctx = 6, c.d_vocab = 11;
  c.normalization_type = ln ? Normalization::LN : Normalization::None;
  c.attn_only = attn_only, c.d_mlp = attn_only ? -1 : 12;
  return c;
}

// Every name hook_name() produces for `layers` layers, through the string API (short kinds,
// both LayerNorm layer types) and the enum API.
std::set<std::string> produced_names(int layers) {
  std::set<std::string> out;
  for (const auto& k : global_hook_kinds()) out.insert(hook_name(k));
  for (int g = 0; g < static_cast<int>(GlobalHook::Count); ++g) out.insert(hook_name(static_cast<GlobalHook>(g)));
  for (int l = 0; l < layers; ++l) {
    for (const auto& k : layer_hook_kinds()) {
      if (k == "scale" || k == "normalized") {
        out.insert(hook_name(k, l, "ln1"));
        out.insert(hook_name(k, l, "ln2"));
      } else {
        out.insert(hook_name(k, l));
      }
    }
    for (int p = 0; p < static_cast<int>(LayerHook::Count); ++p) out.insert(hook_name(static_cast<LayerHook>(p), l));
  }
  return out;
}

TEST(HookNames, ModelListEqualsProducedNamesBothWays) {
  // With LayerNorm and MLP blocks every kind exists, so the two sets must be equal.
  for (int layers : {0, 1, 3}) {
    HookedTransformer m(full_cfg(layers, /*ln=*/true, /*attn_only=*/false));
    const auto listed = m->hook_names();
    const std::set<std::string> listed_set(listed.begin(), listed.end());
    ASSERT_EQ(listed_set.size(), listed.size()) << "hook_names() lists a name twice";
    const std::set<std::string> produced = produced_names(layers);
    for (const auto& n : listed_set) EXPECT_TRUE(produced.count(n)) << n << " is listed but never produced";
    for (const auto& n : produced) EXPECT_TRUE(listed_set.count(n)) << n << " is produced but not listed";
  }
}

TEST(HookNames, ReducedModelsListOnlyProducedNamesAndEachOneParses) {
  for (bool ln : {false, true})
    for (bool attn_only : {false, true}) {
      HookedTransformer m(full_cfg(2, ln, attn_only));
      const std::set<std::string> produced = produced_names(2);
      for (const auto& n : m->hook_names()) {
        EXPECT_TRUE(produced.count(n)) << n;
        HookId id;
        ASSERT_TRUE(parse_hook_name(n, &id)) << n;
        // Round trip: (kind, layer, layer_type) spells the same name again.
        const bool ln_point = id.kind == "scale" || id.kind == "normalized";
        EXPECT_EQ(hook_name(id.kind, id.layer, ln_point && id.layer >= 0 ? id.layer_type : ""), n);
        EXPECT_TRUE(m->has_hook_point(hook_name(n))) << "a full name passes through: " << n;
      }
    }
}

TEST(HookNames, TransformerLensSpellingsAndAliases) {
  EXPECT_EQ(hook_name("pattern", 0), "blocks.0.attn.hook_pattern");
  EXPECT_EQ(hook_name("attn", 2), "blocks.2.attn.hook_pattern");
  EXPECT_EQ(hook_name("attn_logits", 1), "blocks.1.attn.hook_attn_scores");
  EXPECT_EQ(hook_name("query", 1), "blocks.1.attn.hook_q");
  EXPECT_EQ(hook_name("key", 1), "blocks.1.attn.hook_k");
  EXPECT_EQ(hook_name("value", 1), "blocks.1.attn.hook_v");
  EXPECT_EQ(hook_name("z", 10), "blocks.10.attn.hook_z");
  EXPECT_EQ(hook_name("resid_pre", 3), "blocks.3.hook_resid_pre");
  EXPECT_EQ(hook_name("mlp_out", 0), "blocks.0.hook_mlp_out");
  EXPECT_EQ(hook_name("pre", 1), "blocks.1.mlp.hook_pre");
  EXPECT_EQ(hook_name("mlp_post", 1), "blocks.1.mlp.hook_post");
  EXPECT_EQ(hook_name("scale", 0, "ln1"), "blocks.0.ln1.hook_scale");
  EXPECT_EQ(hook_name("normalized", 4, "ln2"), "blocks.4.ln2.hook_normalized");
  EXPECT_EQ(hook_name("normalized"), "ln_final.hook_normalized");
  EXPECT_EQ(hook_name("scale", -1, "ln_final"), "ln_final.hook_scale");
  EXPECT_EQ(hook_name("embed"), "hook_embed");
  EXPECT_EQ(hook_name("pos_embed"), "hook_pos_embed");
  EXPECT_EQ(hooks::pattern(1), "blocks.1.attn.hook_pattern");
  EXPECT_EQ(hooks::z(0), "blocks.0.attn.hook_z");
  EXPECT_EQ(hooks::resid_post(2), "blocks.2.hook_resid_post");
  EXPECT_EQ(hooks::embed(), "hook_embed");
}

TEST(HookNames, KindFilterAndParserRejectNonNames) {
  EXPECT_EQ(hook_kind("blocks.12.attn.hook_pattern"), "pattern");
  EXPECT_EQ(hook_kind("ln_final.hook_scale"), "scale");
  EXPECT_TRUE(hooks::is_kind("z")("blocks.0.attn.hook_z"));
  EXPECT_FALSE(hooks::is_kind("z")("blocks.0.attn.hook_pattern"));
  for (const char* bad : {"", "blocks.", "blocks.0.", "blocks.x.attn.hook_z", "blocks.01.attn.hook_z",
                          "blocks.0.attn.hook_zz", "blocks.0.hook_pattern", "xblocks.0.attn.hook_z",
                          "hook_embedx", "blocks.-1.attn.hook_z"})
    EXPECT_EQ(hook_kind(bad), "") << bad;
}

TEST(HookNames, UnknownNamesAreErrorsNamingThem) {
  try {
    hook_name("patern", 0);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'patern'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(hook_name("pattern"), Error);            // needs a layer
  EXPECT_THROW(hook_name("embed", 0), Error);           // has none
  EXPECT_THROW(hook_name("scale", 0), Error);           // needs ln1 or ln2
  EXPECT_THROW(hook_name("scale", 0, "ln_final"), Error);
  EXPECT_THROW(hook_name(LayerHook::Z, -1), Error);
  EXPECT_THROW(hook_name("blocks.0.attn.hook_zz"), Error);
}

}  // namespace
}  // namespace circuitlab::models
