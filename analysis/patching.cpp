// Activation patching (see patching.h). The batched path stacks up to `batch` copies of the
// corrupted prompt and patches a different cell in each copy of one hook's activation.
#include "analysis/patching.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "models/hook_names.h"

namespace circuitlab::analysis {

PatchTarget patch_target_from_string(const std::string& s) {
  if (s == "resid_pre") return PatchTarget::ResidPre;
  if (s == "attn_out") return PatchTarget::AttnOut;
  if (s == "head") return PatchTarget::Head;
  if (s == "head_pos") return PatchTarget::HeadPos;
  fail("patch target: expected \"resid_pre\", \"attn_out\", \"head\" or \"head_pos\", got \"" + s + "\"");
}

std::string to_string(PatchTarget t) {
  switch (t) {
    case PatchTarget::ResidPre: return "resid_pre";
    case PatchTarget::AttnOut: return "attn_out";
    case PatchTarget::Head: return "head";
    case PatchTarget::HeadPos: return "head_pos";
  }
  return "?";
}

namespace {

std::string hook_for(PatchTarget t, int layer) {
  switch (t) {
    case PatchTarget::ResidPre: return models::hooks::resid_pre(layer);
    case PatchTarget::AttnOut: return models::hooks::attn_out(layer);
    default: return models::hooks::z(layer);
  }
}

// One patched cell: which layer, and the (head, position) it replaces; -1 = all.
struct Cell {
  int layer, head, pos;
  int64_t row, col;
};

std::vector<Cell> cells_for(PatchTarget t, int L, int H, int T) {
  std::vector<Cell> cells;
  for (int l = 0; l < L; ++l) {
    switch (t) {
      case PatchTarget::ResidPre:
      case PatchTarget::AttnOut:
        for (int p = 0; p < T; ++p) cells.push_back({l, -1, p, l, p});
        break;
      case PatchTarget::Head:
        for (int h = 0; h < H; ++h) cells.push_back({l, h, -1, l, h});
        break;
      case PatchTarget::HeadPos:
        for (int h = 0; h < H; ++h)
          for (int p = 0; p < T; ++p) cells.push_back({l, h, p, int64_t(l) * H + h, p});
        break;
    }
  }
  return cells;
}

// Copies the clean cell into row `b` of `act` (resid/attn_out [B,T,D]; z [B,T,H,Dh]).
void patch_cell(torch::Tensor& act, int64_t b, const torch::Tensor& clean_act, const Cell& c) {
  auto dst = act[b];        // [T,D] or [T,H,Dh]
  auto src = clean_act[0];
  if (c.head >= 0) {
    dst = dst.select(1, c.head);  // [T,Dh]
    src = src.select(1, c.head);
  }
  if (c.pos >= 0) {
    dst = dst[c.pos];
    src = src[c.pos];
  }
  dst.copy_(src);
}

void check_inputs(models::HookedTransformer& model, const torch::Tensor& clean, const torch::Tensor& corrupt,
                  int64_t correct, int64_t incorrect) {
  if (clean.dim() != 2 || corrupt.dim() != 2 || clean.size(0) != 1 || corrupt.size(0) != 1)
    fail("patching: expected clean and corrupt token tensors of shape [1,T]");
  if (clean.size(1) != corrupt.size(1))
    fail("patching: clean and corrupted prompts must have the same number of tokens (clean " +
         std::to_string(clean.size(1)) + ", corrupted " + std::to_string(corrupt.size(1)) + ")");
  const int64_t V = model->cfg().vocab_out();
  for (int64_t id : {correct, incorrect})
    if (id < 0 || id >= V) fail("patching: answer token id " + std::to_string(id) + " outside the model's vocabulary");
}

double logit_diff(const torch::Tensor& logits_row, int64_t correct, int64_t incorrect) {  // [T,V]
  auto last = logits_row[-1];
  return (last[correct] - last[incorrect]).item<double>();
}

PatchResult finish(double clean_d, double corrupt_d, torch::Tensor patched) {
  PatchResult r;
  r.clean_logit_diff = clean_d;
  r.corrupt_logit_diff = corrupt_d;
  r.patched_logit_diff = patched;
  const double denom = clean_d - corrupt_d;
  if (std::abs(denom) < 1e-6)
    r.recovery = torch::full_like(patched, std::numeric_limits<float>::quiet_NaN());
  else
    r.recovery = (patched - corrupt_d) / denom;
  return r;
}

}  // namespace

PatchResult activation_patching(models::HookedTransformer& model, const torch::Tensor& clean,
                                const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                                PatchTarget target, int batch) {
  torch::NoGradGuard ng;
  check_inputs(model, clean, corrupt, correct, incorrect);
  const auto& cfg = model->cfg();
  const int L = cfg.n_layers, H = cfg.n_heads, T = static_cast<int>(clean.size(1));
  std::set<std::string> names;
  for (int l = 0; l < L; ++l) names.insert(hook_for(target, l));
  auto [clean_logits, clean_cache] =
      models::run_with_cache(model, clean, [&](const std::string& n) { return names.count(n) > 0; });
  auto corrupt_logits = model->forward(corrupt);
  const double clean_d = logit_diff(clean_logits[0], correct, incorrect);
  const double corrupt_d = logit_diff(corrupt_logits[0], correct, incorrect);

  const int64_t rows = target == PatchTarget::HeadPos ? int64_t(L) * H : L;
  const int64_t cols = target == PatchTarget::Head ? H : T;
  auto patched = torch::zeros({rows, cols}, torch::kFloat);
  auto cells = cells_for(target, L, H, T);
  batch = std::max(1, batch);
  // Chunks never span layers: one hook name per forward pass.
  size_t i = 0;
  while (i < cells.size()) {
    size_t j = i;
    while (j < cells.size() && j - i < size_t(batch) && cells[j].layer == cells[i].layer) ++j;
    const int64_t n = static_cast<int64_t>(j - i);
    const std::string name = hook_for(target, cells[i].layer);
    const torch::Tensor& clean_act = clean_cache.at(name);
    std::vector<Cell> chunk(cells.begin() + i, cells.begin() + j);
    auto tokens = corrupt.expand({n, T}).contiguous();  // [n,T]
    auto logits = models::run_with_hooks(
        model, tokens, {{name, [&](const torch::Tensor& act, const std::string&) {
                           auto out = act.clone();
                           for (int64_t b = 0; b < n; ++b) patch_cell(out, b, clean_act, chunk[b]);
                           return std::optional<torch::Tensor>(out);
                         }}});
    auto last = logits.select(1, T - 1);                                     // [n,V]
    auto diffs = (last.select(1, correct) - last.select(1, incorrect)).to(torch::kFloat);  // [n]
    auto acc = diffs.accessor<float, 1>();
    for (int64_t b = 0; b < n; ++b) patched[chunk[b].row][chunk[b].col] = acc[b];
    i = j;
  }
  return finish(clean_d, corrupt_d, patched);
}

PatchResult activation_patching_reference(models::HookedTransformer& model, const torch::Tensor& clean,
                                          const torch::Tensor& corrupt, int64_t correct, int64_t incorrect,
                                          PatchTarget target) {
  torch::NoGradGuard ng;
  check_inputs(model, clean, corrupt, correct, incorrect);
  const auto& cfg = model->cfg();
  const int L = cfg.n_layers, H = cfg.n_heads, T = static_cast<int>(clean.size(1));
  auto [clean_logits, clean_cache] = models::run_with_cache(model, clean);
  const double clean_d = logit_diff(clean_logits[0], correct, incorrect);
  const double corrupt_d = logit_diff(model->forward(corrupt)[0], correct, incorrect);
  const int64_t rows = target == PatchTarget::HeadPos ? int64_t(L) * H : L;
  const int64_t cols = target == PatchTarget::Head ? H : T;
  auto patched = torch::zeros({rows, cols}, torch::kFloat);
  for (const auto& c : cells_for(target, L, H, T)) {
    const std::string name = hook_for(target, c.layer);
    const torch::Tensor& clean_act = clean_cache.at(name);
    auto logits = models::run_with_hooks(model, corrupt, {{name, [&](const torch::Tensor& act, const std::string&) {
                                                             auto out = act.clone();
                                                             patch_cell(out, 0, clean_act, c);
                                                             return std::optional<torch::Tensor>(out);
                                                           }}});
    patched[c.row][c.col] = logit_diff(logits[0], correct, incorrect);
  }
  return finish(clean_d, corrupt_d, patched);
}

}  // namespace circuitlab::analysis
