// JSON views of the lab's results: token objects, top-k predictions, matrices, rounded numbers.
// Shared by the endpoint files; no model runs here.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/lab_model.h"

namespace circuitlab::server {

// 4 decimals keep the JSON small; non-finite values become null.
double r4(double x);
nlohmann::json num_or_null(double x);
// [R,C] -> [[...]] (rounded, null for non-finite).
nlohmann::json matrix_json(const at::Tensor& m);

// Tokens the model produced (predictions, generations): {id, gpt2_id, str}, gpt2_id −1 and the
// namer's placeholder for the compact "other" id.
nlohmann::json output_token(const LabModel& m, int64_t id);
nlohmann::json output_tokens(const LabModel& m, const std::vector<int64_t>& ids);
// A generation's new ids: {text, tokens}.
nlohmann::json generation_json(const LabModel& m, const std::vector<int64_t>& ids);
// Tokens of an input text: {id, gpt2_id, str} with the text's real GPT-2 id and string, plus
// "oov": true where the model reads the token as its "other" id.
nlohmann::json input_tokens(const LabModel& m, const EncodedText& e);
// The printed form of input token t (its real string).
std::string input_str(const LabModel& m, const EncodedText& e, size_t t);

// Top-k of softmax(logits [T,V]) per position: [T][k] of output_token + "prob".
nlohmann::json top_predictions(const LabModel& m, const at::Tensor& logits, int k);
// Precomputed top-k ids / probs [T,k] in the same form.
nlohmann::json top_k_json(const LabModel& m, const at::Tensor& ids, const at::Tensor& probs);
// Lower triangle of attention patterns [L,H,T,T] -> [L][H][q][0..q].
nlohmann::json attention_json(const at::Tensor& patterns);

}  // namespace circuitlab::server
