// Token naming shared by analysis.json and the lab (see token_namer.h).
#include "data/token_namer.h"

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/vocab_map.h"

namespace circuitlab::data {

TokenNamer::TokenNamer(const Tokenizer* tok, const VocabMap* vmap) : tok_(tok), vmap_(vmap) {}
TokenNamer::TokenNamer(TokenNamer&&) noexcept = default;
TokenNamer::~TokenNamer() = default;

TokenNamer TokenNamer::with_default_tokenizer(const VocabMap* vmap) {
  TokenNamer n(nullptr, vmap);
  try {
    n.own_tok_ = std::make_unique<Tokenizer>(Tokenizer::load_default());
    n.tok_ = n.own_tok_.get();
  } catch (const std::exception&) {
    // No tokenizer files: "#<id>" names.
  }
  return n;
}

int32_t TokenNamer::gpt2_id(int64_t id) const {
  if (!vmap_) return static_cast<int32_t>(id);
  return id == vmap_->other_id() ? -1 : vmap_->to_gpt2(static_cast<int32_t>(id));
}

int64_t TokenNamer::model_id(int32_t g) const { return vmap_ ? vmap_->to_compact(g) : static_cast<int64_t>(g); }

bool TokenNamer::in_vocab(int32_t g) const { return !vmap_ || vmap_->to_compact(g) != vmap_->other_id(); }

std::string TokenNamer::gpt2_str(int32_t g) const {
  if (g < 0) return kOtherTokenStr;
  if (g == kEndOfText) return "<|endoftext|>";
  if (tok_ && g < tok_->vocab_size()) return tok_->token_str(g);
  return "#" + std::to_string(g);
}

std::string TokenNamer::str(int64_t id) const { return gpt2_str(gpt2_id(id)); }

nlohmann::json TokenNamer::json(int64_t id) const {
  return nlohmann::json{{"id", id}, {"gpt2_id", gpt2_id(id)}, {"str", str(id)}};
}

}  // namespace circuitlab::data
