// Direct logit attribution (see dla.h). Components are gathered from one run_with_cache as rows
// of a [N, D] matrix, then projected together in float64 through the frozen final LayerNorm.
#include "analysis/dla.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/hook_names.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

using torch::Tensor;

const char* to_string(DlaKind k) {
  switch (k) {
    case DlaKind::Embed: return "embed";
    case DlaKind::PosEmbed: return "pos_embed";
    case DlaKind::Head: return "head";
    case DlaKind::Mlp: return "mlp";
    case DlaKind::Bias: return "bias";
  }
  return "?";
}

namespace {

void check_options(const models::ModelConfig& c, int64_t T, const DlaOptions& o) {
  if (T == 0) fail("attribution: empty prompt (no tokens)");
  if (o.position < -T || o.position >= T)
    fail("position " + std::to_string(o.position) + " is out of range for a prompt of " + std::to_string(T) +
         " tokens (0.." + std::to_string(T - 1) + ", or negative from the end)");
  const int64_t V = c.vocab_out();
  if (o.target < 0 || o.target >= V)
    fail("target " + std::to_string(o.target) + " is out of range for the model's output vocabulary (0.." +
         std::to_string(V - 1) + ")");
  if (o.against != -1 && (o.against < 0 || o.against >= V))
    fail("against " + std::to_string(o.against) + " is out of range for the model's output vocabulary (0.." +
         std::to_string(V - 1) + ")");
  if (o.against == o.target) fail("against: the same token as target (the logit difference would be 0)");
}

// The hooks whose activations write to the residual stream (and what per_source needs).
bool wanted_hook(const std::string& n, bool per_source) {
  const std::string k = models::hook_kind(n);
  if (k == "embed" || k == "pos_embed" || k == "result" || k == "mlp_out") return true;
  if (n == models::hook_name(models::GlobalHook::LnFinalScale)) return true;
  return per_source && (k == "pattern" || k == "v");
}

struct Rows {
  std::vector<Tensor> rows;  // each [D]
  std::vector<DlaComponent> comps;
  void add(DlaKind kind, int layer, int head, std::string name, const Tensor& row) {
    DlaComponent c;
    c.kind = kind;
    c.layer = layer;
    c.head = head;
    c.name = std::move(name);
    comps.push_back(std::move(c));
    rows.push_back(row.to(torch::kCPU, torch::kDouble).reshape({-1}));
  }
};

// The residual stream at p as its summands (forward order), each a [D] row.
Rows residual_components(models::HookedTransformer& model, const models::ActivationCache& cache, int64_t p) {
  const auto& c = model->cfg();
  const auto sd = model->state_dict();
  auto at_p = [&](const std::string& n) { return cache.at(n)[0][p]; };
  Rows r;
  r.add(DlaKind::Embed, -1, -1, models::hooks::embed(), at_p(models::hooks::embed()));
  if (!c.shortformer()) r.add(DlaKind::PosEmbed, -1, -1, models::hooks::pos_embed(), at_p(models::hooks::pos_embed()));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string res = models::hooks::result(l);
    const Tensor heads = at_p(res);  // [H, D]
    for (int h = 0; h < c.n_heads; ++h) r.add(DlaKind::Head, l, h, res, heads[h]);
    const std::string b_o = "blocks." + std::to_string(l) + ".attn.b_O";
    if (sd.count(b_o)) r.add(DlaKind::Bias, l, -1, b_o, sd.at(b_o));
    if (!c.attn_only) r.add(DlaKind::Mlp, l, -1, models::hooks::mlp_out(l), at_p(models::hooks::mlp_out(l)));
  }
  return r;
}

// Per head, its output at p split by source position: pattern[p,s]·(v_s·W_O[h]) -> [H, p+1, D].
Tensor head_outputs_by_source(models::HookedTransformer& model, const models::ActivationCache& cache, int l,
                              int64_t p) {
  const Tensor pat = cache.at(models::hooks::pattern(l))[0].select(1, p).slice(1, 0, p + 1);  // [H, S]
  const Tensor v = cache.at(models::hooks::v(l))[0].slice(0, 0, p + 1).to(torch::kDouble);  // [S, H, Dh]
  const Tensor vo = torch::einsum("shd,hde->hse", {v, model->W_O(l).detach().to(torch::kDouble)});  // [H, S, D]
  return pat.to(torch::kDouble).unsqueeze(-1) * vo;
}

}  // namespace

DlaResult direct_logit_attribution(models::HookedTransformer& model, const std::vector<int64_t>& tokens,
                                   const DlaOptions& opts) {
  const auto& c = model->cfg();
  const int64_t T = static_cast<int64_t>(tokens.size());
  check_options(c, T, opts);
  torch::NoGradGuard ng;
  DlaResult out;
  out.position = opts.position < 0 ? T + opts.position : opts.position;
  out.target = opts.target;
  out.against = opts.against;
  out.has_pos_embed = !c.shortformer();
  const int64_t p = out.position;
  const auto device = model->W_E().device();
  const Tensor toks = torch::tensor(tokens, torch::kLong).unsqueeze(0).to(device);  // [1, T]
  auto [logits, cache] = models::run_with_cache(
      model, toks, [ps = opts.per_source](const std::string& n) { return wanted_hook(n, ps); });
  const Tensor lp = logits[0][p].to(torch::kCPU, torch::kDouble);  // [V_out]
  out.logit = lp[opts.target].item<double>() - (opts.against >= 0 ? lp[opts.against].item<double>() : 0.0);

  // u [D]: the unembedding direction; bu: the b_U term of the logit (difference).
  const Tensor W_U = model->W_U().detach().to(torch::kCPU, torch::kDouble);  // [D, V_out]
  const Tensor b_U = model->b_U().detach().to(torch::kCPU, torch::kDouble);  // [V_out]
  Tensor u = W_U.select(1, opts.target);
  Tensor bu = b_U[opts.target];
  if (opts.against >= 0) {
    u = u - W_U.select(1, opts.against);
    bu = bu - b_U[opts.against];
  }
  // The frozen LayerNorm folded into the direction: ((c − mean c)/σ ⊙ w)·u = (c − mean c)·(w ⊙ u / σ).
  const auto sd = model->state_dict();
  Tensor dir = u;
  if (c.has_ln()) {
    out.ln_scale = cache.at(models::hook_name(models::GlobalHook::LnFinalScale))[0][p][0].item<double>();
    dir = sd.at("ln_final.w").detach().to(torch::kCPU, torch::kDouble) * u / out.ln_scale;
  }
  auto project = [&](const Tensor& rows) {  // [..., D] -> [...]
    Tensor x = rows.to(torch::kCPU, torch::kDouble);
    if (c.has_ln()) x = x - x.mean(-1, /*keepdim=*/true);
    return torch::matmul(x, dir);
  };

  Rows r = residual_components(model, cache, p);
  const Tensor values = project(torch::stack(r.rows));  // [N]
  for (size_t i = 0; i < r.comps.size(); ++i) r.comps[i].value = values[static_cast<int64_t>(i)].item<double>();
  if (opts.per_source) {
    std::vector<Tensor> by_layer;  // [H, p+1] per layer
    for (int l = 0; l < c.n_layers; ++l) by_layer.push_back(project(head_outputs_by_source(model, cache, l, p)).contiguous());
    for (auto& comp : r.comps) {
      if (comp.kind != DlaKind::Head) continue;
      const Tensor by = by_layer[comp.layer][comp.head].contiguous();  // [p+1]
      comp.by_source.assign(by.data_ptr<double>(), by.data_ptr<double>() + by.numel());
    }
  }
  // Constant terms after the residual stream: b_U, and ln_final.b (added after the scale).
  auto add_const = [&](const std::string& name, double v) {
    DlaComponent k;
    k.kind = DlaKind::Bias;
    k.name = name;
    k.value = v;
    r.comps.push_back(std::move(k));
  };
  if (sd.count("unembed.b_U")) add_const("unembed.b_U", bu.item<double>());
  if (c.has_ln() && sd.count("ln_final.b"))
    add_const("ln_final.b", torch::dot(sd.at("ln_final.b").detach().to(torch::kCPU, torch::kDouble), u).item<double>());
  out.components = std::move(r.comps);
  for (const auto& k : out.components) out.sum += k.value;
  return out;
}

}  // namespace circuitlab::analysis
