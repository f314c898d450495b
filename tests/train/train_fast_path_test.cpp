// The hand-written training path (train/fast_transformer.h) against autograd through
// HookedTransformer::forward + cross_entropy: loss, every gradient, gradient accumulation and
// one full clip + AdamW step, for attention-only toys (shortformer and standard positions,
// with/without biases, 0/1/2 layers, several logits chunks, saturated logits) and GPT-2 blocks
// (LayerNorm + GELU/ReLU MLP, tied and untied unembedding, both position kinds); fp32 and fp64.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include <torch/torch.h>

#include "core/error.h"
#include "models/hooked_transformer.h"
#include "tests/common/all_close.h"
#include "train/fast_transformer.h"
#include "train/optimizer.h"

namespace circuitlab::train {
namespace {

// fp32: two implementations of the same math with different summation orders.
constexpr double kF32Rtol = 1e-4, kF32Atol = 1e-6;
// fp64: the same, where rounding is 2^-52.
constexpr double kF64Rtol = 1e-10, kF64Atol = 1e-12;

using circuitlab::testing::all_close;

struct Case {
  std::string name;
  int layers;
  bool shortformer, bias;
  int d_vocab = 40, b = 3, T = 7, n_ctx = 8;
  double wu_scale = 1.0;  // > 1 saturates the softmax (target probabilities underflow)
  // GPT-2 blocks: LayerNorm, MLP (d_mlp 4·d_model), unembedding tied to the embedding.
  bool ln = false, mlp = false, tied = false;
  std::string act = "gelu_new";
  // Std of the random weights. 0.4 makes O(1) activations in these 16-wide toys; MLPs without
  // LayerNorm grow the residual ~5x a block at 0.4, so the fp32 comparison of two summation
  // orders would test rounding of values in the tens, not the math: that case uses 0.2.
  double std = 0.4;
};

models::ModelConfig config_of(const Case& c) {
  models::ModelConfig m;
  m.n_layers = c.layers;
  m.d_model = 16;
  m.n_heads = 2;
  m.d_head = 8;
  m.n_ctx = c.n_ctx;
  m.d_vocab = c.d_vocab;
  m.attn_only = !c.mlp;
  m.normalization_type = c.ln ? models::Normalization::LN : models::Normalization::None;
  m.act_fn = c.act;
  m.tied_unembed = c.tied;
  m.positional_embedding_type = c.shortformer ? "shortformer" : "standard";
  m.use_bias = c.bias;
  m.seed = 5;
  return m;
}

// Two models with identical, fully random weights (biases and positions included).
std::pair<models::HookedTransformer, models::HookedTransformer> twin_models(const Case& c, torch::Dtype dt) {
  models::HookedTransformer a(config_of(c)), b(config_of(c));
  {
    torch::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
    for (auto& [name, t] : a->state_dict()) {
      t.normal_(0.0, c.std, gen);
      if (name == "unembed.W_U") t.mul_(c.wu_scale);
    }
  }
  a->to(dt);
  b->to(dt);
  b->load_state_dict(a->state_dict(), "twin");
  return {a, b};
}

std::map<std::string, torch::Tensor> grads_of(models::HookedTransformer& m) {
  std::map<std::string, torch::Tensor> g;
  for (auto& [name, t] : m->state_dict()) g[name] = t.grad();
  return g;
}

double autograd_loss_backward(models::HookedTransformer& m, const torch::Tensor& x, const torch::Tensor& y, double scale) {
  auto logits = m->forward(x);  // [b, T, V]
  auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}));
  (loss * scale).backward();
  return loss.item<double>();
}

void check_case(const Case& c, torch::Dtype dt) {
  SCOPED_TRACE(c.name + (dt == torch::kDouble ? " fp64" : " fp32"));
  const double rtol = dt == torch::kDouble ? kF64Rtol : kF32Rtol, atol = dt == torch::kDouble ? kF64Atol : kF32Atol;
  auto [ref, fast_model] = twin_models(c, dt);
  std::string why;
  ASSERT_TRUE(FastTransformer::supports(fast_model, &why)) << why;
  FastTransformer fast(fast_model);
  EXPECT_STREQ(fast.path_name(), c.ln || c.mlp ? "fast_gpt2_blocks" : "fast_attn_only");
  torch::manual_seed(3);
  // Two micro-batches accumulated with scale 1/2 each (as grad_accum 2 in the trainer).
  for (int micro = 0; micro < 2; ++micro) {
    auto toks = torch::randint(c.d_vocab, {c.b, c.T + 1}, torch::kInt64);  // [b, T+1]
    auto x = toks.slice(1, 0, c.T), y = toks.slice(1, 1, c.T + 1);
    const double want = autograd_loss_backward(ref, x, y, 0.5);
    const double got = fast.forward_backward(x, y, 0.5);
    EXPECT_TRUE(all_close(torch::tensor(got, torch::kDouble), torch::tensor(want, torch::kDouble), rtol, atol,
                          "loss (micro-batch " + std::to_string(micro) + ")"));
  }
  // Saturated logits (hundreds) carry fp32 rounding of ~1e-5 absolute into every softmax:
  // the two fp32 orders differ by ~1e-3 relative in the gradients. fp32 checks the loss (the
  // underflow fallback); fp64 checks everything for this case.
  if (dt == torch::kFloat && c.wu_scale > 1) return;
  auto gr = grads_of(ref), gf = grads_of(fast_model);
  ASSERT_EQ(gr.size(), gf.size());
  for (auto& [name, g] : gr) EXPECT_TRUE(all_close(gf[name], g, rtol, atol, "grad " + name));

  // One full optimizer step: clip (active: the norm exceeds 0.05) then AdamW with decay.
  std::vector<torch::Tensor> pr, pf;
  auto npr = named_trainable_params(ref, false), npf = named_trainable_params(fast_model, false);
  for (auto& p : npr) pr.push_back(p.param);
  for (auto& p : npf) pf.push_back(p.param);
  const double nr = torch::nn::utils::clip_grad_norm_(pr, 0.05), nf = torch::nn::utils::clip_grad_norm_(pf, 0.05);
  EXPECT_TRUE(all_close(torch::tensor(nf, torch::kDouble), torch::tensor(nr, torch::kDouble), rtol, atol, "grad norm"));
  EXPECT_GT(nr, 0.05);
  const AdamWSettings s{1e-2, 0.1, 0.9, 0.95, 1e-8, false};
  auto or_ = make_adamw(npr, s), of = make_adamw(npf, s);
  or_->step();
  of->step();
  auto wr = ref->state_dict(), wf = fast_model->state_dict();
  // Adam divides by sqrt(v): elements whose gradient is ~0 amplify rounding, so compare the
  // update against the update, with atol at the scale of lr.
  for (auto& [name, w] : wr) {
    // b_K's true gradient is exactly 0 (it shifts every score of a query row by the same
    // amount); Adam turns its rounding noise into ±lr updates, so in fp32 it is held by the
    // gradient check above only.
    if (dt == torch::kFloat && name.find("attn.b_K") != std::string::npos) continue;
    EXPECT_TRUE(all_close(wf[name], w, rtol, dt == torch::kDouble ? 1e-9 : 1e-5, "weight after step " + name));
  }
}

const Case kCases[] = {
    {"shortformer_bias_2l", 2, true, true},
    {"shortformer_nobias_2l", 2, true, false},
    {"standard_bias_2l", 2, false, true},
    {"standard_nobias_1l", 1, false, false},
    {"shortformer_bias_1l", 1, true, true},
    {"standard_bias_0l", 0, false, true},
    // V 8192: 32 rows per logits chunk; b·T = 80 rows -> 3 chunks, the last partial; T = n_ctx.
    {"shortformer_bias_2l_chunks", 2, true, true, 8192, 5, 16, 16},
    // W_U × 60: logits spread over hundreds, many target probabilities underflow in fp32.
    {"standard_bias_2l_saturated", 2, false, true, 40, 3, 7, 8, 60.0},
};

// GPT-2 blocks: {name, layers, shortformer, bias, d_vocab, b, T, n_ctx, wu_scale, ln, mlp, tied, act}.
const Case kBlockCases[] = {
    {"gpt2_standard_untied_2l", 2, false, true, 40, 3, 7, 8, 1.0, true, true, false},
    {"gpt2_standard_tied_2l", 2, false, true, 40, 3, 7, 8, 1.0, true, true, true},
    {"gpt2_shortformer_untied_2l", 2, true, true, 40, 3, 7, 8, 1.0, true, true, false},
    {"gpt2_shortformer_tied_1l", 1, true, true, 40, 3, 7, 8, 1.0, true, true, true},
    {"gpt2_standard_nobias_2l", 2, false, false, 40, 3, 7, 8, 1.0, true, true, false},
    {"gpt2_gelu_erf_1l", 1, false, true, 40, 2, 5, 8, 1.0, true, true, false, "gelu"},
    {"gpt2_relu_1l", 1, false, true, 40, 2, 5, 8, 1.0, true, true, false, "relu"},
    {"ln_attn_only_2l", 2, true, true, 40, 3, 7, 8, 1.0, true, false, false},
    {"mlp_no_ln_2l", 2, false, true, 40, 3, 7, 8, 1.0, false, true, false, "gelu_new", 0.2},
    {"gpt2_standard_0l", 0, false, true, 40, 3, 7, 8, 1.0, true, true, false},
    // V 8192: several logits chunks, the last partial; T = n_ctx.
    {"gpt2_standard_untied_2l_chunks", 2, false, true, 8192, 5, 16, 16, 1.0, true, true, false},
    {"gpt2_standard_tied_2l_chunks", 2, false, true, 8192, 5, 16, 16, 1.0, true, true, true},
};

TEST(FastTransformer, AttnOnlyMatchesAutogradFp32) {
  for (const auto& c : kCases) check_case(c, torch::kFloat);
}

TEST(FastTransformer, AttnOnlyMatchesAutogradFp64) {
  for (const auto& c : kCases) check_case(c, torch::kDouble);
}

TEST(FastTransformer, Gpt2BlocksMatchAutogradFp32) {
  for (const auto& c : kBlockCases) check_case(c, torch::kFloat);
}

TEST(FastTransformer, Gpt2BlocksMatchAutogradFp64) {
  for (const auto& c : kBlockCases) check_case(c, torch::kDouble);
}

TEST(FastTransformer, RefusesWhatItDoesNotCover) {
  Case c{"mlp", 1, true, true};
  c.ln = c.mlp = true;
  std::string why;
  models::HookedTransformer half(config_of(c));
  half->to(torch::kHalf);
  EXPECT_FALSE(FastTransformer::supports(half, &why));
  EXPECT_NE(why.find("dtype"), std::string::npos) << why;
  EXPECT_THROW(FastTransformer{half}, Error);
  models::HookedTransformer frozen(config_of(c));
  frozen->W_E().set_requires_grad(false);
  EXPECT_FALSE(FastTransformer::supports(frozen, &why));
  EXPECT_NE(why.find("frozen"), std::string::npos) << why;
}

TEST(FastTransformer, RejectsOutOfRangeTokens) {
  Case c{"range", 1, true, true};
  models::HookedTransformer m(config_of(c));
  FastTransformer fast(m);
  auto x = torch::zeros({2, 4}, torch::kInt64), y = torch::zeros({2, 4}, torch::kInt64);
  x[1][2] = c.d_vocab;
  EXPECT_THROW(fast.forward_backward(x, y), Error);
}

}  // namespace
}  // namespace circuitlab::train
