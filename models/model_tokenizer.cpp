// The tokenizer that goes with a model directory (kept apart from model_dir.cpp so that
// loading weights does not pull in the BPE tokenizer).
#include "core/file_io.h"
#include "models/model_dir.h"

namespace circuitlab::models {

data::Tokenizer load_model_tokenizer(const std::string& dir) {
  if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) return data::Tokenizer::load_dir(dir);
  return data::Tokenizer::load_default();
}

}  // namespace circuitlab::models
