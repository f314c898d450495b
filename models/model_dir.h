// Model directories (DESIGN.md contract 1): config.json + model.safetensors (+ vocab_map.json).
// Toy family in TransformerLens names; GPT-2 in Hugging Face layout (read only).
#pragma once
#include <optional>
#include <string>

#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::models {

struct LoadedModel {
  HookedTransformer model{nullptr};
  std::optional<data::VocabMap> vocab_map;  // compact id <-> GPT-2 id, when trained compact
  std::string dir;
};

// Error naming the file/tensor/field on any inconsistency.
LoadedModel load_model_dir(const std::string& dir);
// Atomic per file; writes TL config keys + TL state-dict names (+ vocab_map.json).
void save_model_dir(const HookedTransformer& model, const std::string& dir,
                    const data::VocabMap* vocab_map = nullptr);
// The tokenizer of a model dir: its vocab.json + merges.txt when present (Hugging Face
// GPT-2 dirs), else the project's default GPT-2 tokenizer.
data::Tokenizer load_model_tokenizer(const std::string& dir);

}  // namespace circuitlab::models
