// One namer for model token ids (DESIGN.md contract 4), shared by analysis.json and the lab:
// model id -> GPT-2 id (through the compact vocabulary, when the model has one) -> the token's
// printable string. Not the tokenizer (tokenizer.h) and not the vocabulary map (vocab_map.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace circuitlab::data {

class Tokenizer;
class VocabMap;

// The printed name of the compact vocabulary's "other" id (analysis.json and the lab alike).
inline constexpr const char* kOtherTokenStr = "<other>";

class TokenNamer {
 public:
  // tok: the GPT-2 tokenizer (nullptr: ids are named "#<gpt2 id>"); vmap: the model's compact
  // vocabulary (nullptr: the model speaks GPT-2 ids). Both must outlive the namer.
  TokenNamer(const Tokenizer* tok, const VocabMap* vmap);
  // The same, with the project's default tokenizer when its files are there (else "#<id>" names).
  static TokenNamer with_default_tokenizer(const VocabMap* vmap);
  TokenNamer(TokenNamer&&) noexcept;
  ~TokenNamer();

  // GPT-2 id of a model id; -1 for the compact "other" id.
  int32_t gpt2_id(int64_t model_id) const;
  // Model id of a GPT-2 id; the "other" id when a compact vocabulary lacks it.
  int64_t model_id(int32_t gpt2_id) const;
  // Whether the model has an id of its own for this GPT-2 id (false: it reads it as "other").
  bool in_vocab(int32_t gpt2_id) const;
  // Printable name of a model id: the GPT-2 token string (Tokenizer::token_str), kOtherTokenStr
  // for the "other" id, "#<gpt2 id>" for an id the tokenizer does not know.
  std::string str(int64_t model_id) const;
  // Printable name of a GPT-2 id, whether or not the model's vocabulary has it.
  std::string gpt2_str(int32_t gpt2_id) const;
  // The token object of analysis.json and the lab's API: {"id", "gpt2_id", "str"}.
  nlohmann::json json(int64_t model_id) const;

 private:
  const Tokenizer* tok_;
  const VocabMap* vmap_;
  std::unique_ptr<Tokenizer> own_tok_;  // with_default_tokenizer only
};

}  // namespace circuitlab::data
