// JSON views of the lab's results (see views.h).
#include "server/views.h"

#include <torch/torch.h>

#include <cmath>

namespace circuitlab::server {

using nlohmann::json;

double r4(double x) { return std::isfinite(x) ? std::round(x * 1e4) / 1e4 : x; }
json num_or_null(double x) { return std::isfinite(x) ? json(r4(x)) : json(nullptr); }

json matrix_json(const torch::Tensor& m) {  // [R,C]
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

json output_token(const LabModel& m, int64_t id) { return m.namer->json(id); }

json output_tokens(const LabModel& m, const std::vector<int64_t>& ids) {
  json arr = json::array();
  for (int64_t id : ids) arr.push_back(output_token(m, id));
  return arr;
}

json generation_json(const LabModel& m, const std::vector<int64_t>& ids) {
  return {{"text", m.decode(ids)}, {"tokens", output_tokens(m, ids)}};
}

std::string input_str(const LabModel& m, const EncodedText& e, size_t t) { return m.namer->gpt2_str(e.gpt2[t]); }

json input_tokens(const LabModel& m, const EncodedText& e) {
  json arr = json::array();
  for (size_t t = 0; t < e.ids.size(); ++t) {
    json tok = {{"id", e.ids[t]}, {"gpt2_id", e.gpt2[t]}, {"str", input_str(m, e, t)}};
    if (!m.namer->in_vocab(e.gpt2[t])) tok["oov"] = true;
    arr.push_back(std::move(tok));
  }
  return arr;
}

json top_k_json(const LabModel& m, const torch::Tensor& ids, const torch::Tensor& probs) {  // [T,k]
  auto ia = ids.to(torch::kLong).contiguous();
  auto pa = probs.to(torch::kFloat).contiguous();
  auto iacc = ia.accessor<int64_t, 2>();
  auto pacc = pa.accessor<float, 2>();
  json out = json::array();
  for (int64_t t = 0; t < ia.size(0); ++t) {
    json row = json::array();
    for (int64_t j = 0; j < ia.size(1); ++j) {
      json e = output_token(m, iacc[t][j]);
      e["prob"] = r4(pacc[t][j]);
      row.push_back(std::move(e));
    }
    out.push_back(std::move(row));
  }
  return out;
}

json top_predictions(const LabModel& m, const torch::Tensor& logits, int k) {  // [T,V]
  auto probs = torch::softmax(logits.to(torch::kFloat), -1);
  auto [vals, idx] = probs.topk(std::min<int64_t>(k, probs.size(-1)), -1);  // [T,k]
  return top_k_json(m, idx, vals);
}

json attention_json(const torch::Tensor& patterns) {  // [L,H,T,T]
  auto p = patterns.to(torch::kFloat).contiguous();
  auto pa = p.accessor<float, 4>();
  const int64_t T = p.size(2);
  json att = json::array();
  for (int64_t l = 0; l < p.size(0); ++l) {
    json layer = json::array();
    for (int64_t h = 0; h < p.size(1); ++h) {
      json mat = json::array();
      for (int64_t q = 0; q < T; ++q) {
        json row = json::array();
        for (int64_t k = 0; k <= q; ++k) row.push_back(r4(pa[l][h][q][k]));  // causal: zeros above the diagonal omitted
        mat.push_back(std::move(row));
      }
      layer.push_back(std::move(mat));
    }
    att.push_back(std::move(layer));
  }
  return att;
}

}  // namespace circuitlab::server
