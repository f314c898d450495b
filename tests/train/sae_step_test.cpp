// train/sae_step: the hand-written sparse forward/backward of every architecture against
// LibTorch autograd over the dense computation; folding the normalisation leaves encode/decode
// unchanged; decoder rows stay unit norm; the synthetic dictionary is recovered (issue 16).
#include <gtest/gtest.h>

#include "models/sae.h"
#include "tests/common/all_close.h"
#include "train/sae_step.h"
#include "train/sae_synth.h"

namespace circuitlab::train {
namespace {

using circuitlab::testing::all_close;
using models::SaeArchitecture;

// fp32 hand-written vs fp32 autograd: different summation orders only.
constexpr double kRtol = 1e-4, kAtol = 1e-6;

// JumpReLU STE of the reference (Rajamanoharan et al. 2024), written with autograd Functions.
struct JumpFn : torch::autograd::Function<JumpFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor pre, torch::Tensor theta,
                               double eps) {
    ctx->save_for_backward({pre, theta});
    ctx->saved_data["eps"] = eps;
    return pre * (pre > theta).to(pre.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list go) {
    auto s = ctx->get_saved_variables();
    const double eps = ctx->saved_data["eps"].toDouble();
    torch::Tensor pre = s[0], theta = s[1];
    torch::Tensor K = ((pre - theta).abs() < eps / 2).to(pre.scalar_type());
    return {go[0] * (pre > theta).to(pre.scalar_type()), (-(theta / eps) * K * go[0]).sum(0), torch::Tensor()};
  }
};
struct StepFn : torch::autograd::Function<StepFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor pre, torch::Tensor theta,
                               double eps) {
    ctx->save_for_backward({pre, theta});
    ctx->saved_data["eps"] = eps;
    return (pre > theta).to(pre.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list go) {
    auto s = ctx->get_saved_variables();
    const double eps = ctx->saved_data["eps"].toDouble();
    torch::Tensor K = ((s[0] - s[1]).abs() < eps / 2).to(s[0].scalar_type());
    return {torch::zeros_like(s[0]), (-(1.0 / eps) * K * go[0]).sum(0), torch::Tensor()};
  }
};

struct Case {
  SaeArchitecture arch;
  bool aux;
};

class SaeStepVsAutograd : public ::testing::TestWithParam<Case> {};

TEST_P(SaeStepVsAutograd, LossAndEveryGradient) {
  const auto [arch, with_aux] = GetParam();
  const int64_t N = 24, d = 10, S = 48, k = 3;
  models::SaeConfig cfg;
  cfg.architecture = arch;
  cfg.d_in = d;
  cfg.d_sae = S;
  cfg.k = k;
  SaeStepOptions opt;
  opt.l1_coefficient = 0.3;
  opt.jumprelu_bandwidth = 0.5;  // wide, so that many pre-activations fall in the STE window
  opt.aux_coefficient = 0.25;
  opt.k_aux = 4;
  opt.dead_tokens = 100;
  SaeTrainingState st(cfg, opt);
  torch::manual_seed(11);
  st.init(torch::randn({64, d}) * 3.0, /*seed=*/5);
  st.W_encT = torch::randn({S, d}) * 0.5;
  st.b_enc = torch::randn({S}) * 0.2;
  st.b_dec = torch::randn({d}) * 0.2;
  if (arch == SaeArchitecture::JumpReLU) st.log_threshold = (torch::rand({S}) * 0.8 + 0.1).log();
  if (with_aux) {  // every third latent dead
    auto t = st.tensors();
    t["since_fired"] = (torch::arange(S) % 3 == 0).to(torch::kLong) * 1000;
    st.load_tensors(t, "test");
  }
  const torch::Tensor x_raw = torch::randn({N, d}) * 3.0;
  SaeGrads g;
  const SaeStepStats stats = st.compute_grads(x_raw, g);

  // Dense reference with autograd.
  auto leaf = [](const torch::Tensor& t) { return t.detach().clone().requires_grad_(true); };
  torch::Tensor W_encT = leaf(st.W_encT), W_dec = leaf(st.W_dec), b_enc = leaf(st.b_enc), b_dec = leaf(st.b_dec);
  torch::Tensor log_th = st.log_threshold.defined() ? leaf(st.log_threshold) : torch::Tensor();
  const torch::Tensor x = x_raw * st.scale();
  const torch::Tensor pre = torch::matmul(x - b_dec, W_encT.t()) + b_enc;
  torch::Tensor f;
  torch::Tensor sparsity = torch::zeros({});
  switch (arch) {
    case SaeArchitecture::Standard:
      f = torch::relu(pre);
      sparsity = opt.l1_coefficient * (f * W_dec.norm(2, 1)).sum() / N;
      break;
    case SaeArchitecture::TopK: {
      auto [v, i] = pre.topk(k, -1);
      f = torch::zeros_like(pre).scatter(-1, i, torch::relu(v));
      break;
    }
    case SaeArchitecture::BatchTopK: {
      auto [v, i] = torch::relu(pre).flatten().topk(k * N);
      f = torch::zeros({N * S}).scatter(0, i, v).view({N, S});
      break;
    }
    case SaeArchitecture::JumpReLU: {
      torch::Tensor theta = log_th.exp();
      f = JumpFn::apply(pre, theta, opt.jumprelu_bandwidth);
      sparsity = opt.l1_coefficient * StepFn::apply(pre, theta, opt.jumprelu_bandwidth).sum() / N;
      break;
    }
  }
  const torch::Tensor x_hat = torch::matmul(f, W_dec) + b_dec;
  const torch::Tensor mse = (x_hat - x).pow(2).sum() / N;
  torch::Tensor aux = torch::zeros({});
  if (with_aux && (arch == SaeArchitecture::TopK || arch == SaeArchitecture::BatchTopK)) {
    const torch::Tensor dead = torch::arange(S) % 3 == 0;
    const int64_t n_dead = dead.sum().item<int64_t>();
    auto [v, i] = pre.masked_fill(dead.logical_not(), -INFINITY).topk(std::min<int64_t>(4, n_dead), -1);
    const torch::Tensor fa = torch::zeros_like(pre).scatter(-1, i, torch::relu(v));
    const torch::Tensor e_hat = torch::matmul(fa, W_dec);
    aux = opt.aux_coefficient * std::min(1.0, n_dead / 4.0) * (e_hat - (x - x_hat).detach()).pow(2).sum() / N;
    EXPECT_GT(aux.item<double>(), 0.0);
  }
  const torch::Tensor loss = mse + sparsity + aux;
  loss.backward();

  EXPECT_NEAR(stats.mse, mse.item<double>(), 1e-4 * mse.item<double>());
  EXPECT_NEAR(stats.loss, loss.item<double>(), 1e-4 * loss.item<double>());
  EXPECT_NEAR(stats.aux_loss, aux.item<double>(), 1e-4 * aux.item<double>() + 1e-9);
  EXPECT_NEAR(stats.l0, (f > 0).sum().item<double>() / N, 1e-9);
  EXPECT_GT(stats.l0, 0.0);
  EXPECT_TRUE(all_close(g.W_encT, W_encT.grad(), kRtol, kAtol, "dW_enc"));
  EXPECT_TRUE(all_close(g.W_dec, W_dec.grad(), kRtol, kAtol, "dW_dec"));
  EXPECT_TRUE(all_close(g.b_enc, b_enc.grad(), kRtol, kAtol, "db_enc"));
  EXPECT_TRUE(all_close(g.b_dec, b_dec.grad(), kRtol, kAtol, "db_dec"));
  if (arch == SaeArchitecture::JumpReLU) {
    ASSERT_TRUE(log_th.grad().defined());
    EXPECT_GT(log_th.grad().abs().sum().item<double>(), 0.0);  // the window holds entries
    EXPECT_TRUE(all_close(g.log_threshold, log_th.grad(), kRtol, kAtol, "dlog_threshold"));
  }
  // The gradients are sparse: the encoder rows of latents that never fired (nor were in the
  // window, nor in AuxK) are exactly zero, as the dense gradient's are.
  EXPECT_TRUE(torch::equal(g.W_encT.abs().sum(1) == 0, W_encT.grad().abs().sum(1) == 0));
}

INSTANTIATE_TEST_SUITE_P(Archs, SaeStepVsAutograd,
                         ::testing::Values(Case{SaeArchitecture::Standard, false}, Case{SaeArchitecture::TopK, false},
                                           Case{SaeArchitecture::TopK, true}, Case{SaeArchitecture::BatchTopK, false},
                                           Case{SaeArchitecture::BatchTopK, true}, Case{SaeArchitecture::JumpReLU, false}),
                         [](const auto& info) {
                           return std::string(models::sae_architecture_name(info.param.arch)) +
                                  (info.param.aux ? "_auxk" : "");
                         });

TEST(SaeStep, FoldingTheNormalisationLeavesEncodeAndDecodeUnchanged) {
  for (auto arch : {SaeArchitecture::TopK, SaeArchitecture::JumpReLU, SaeArchitecture::Standard}) {
    models::SaeConfig cfg;
    cfg.architecture = arch;
    cfg.d_in = 8;
    cfg.d_sae = 32;
    cfg.k = 4;
    SaeTrainingState st(cfg, {});
    torch::manual_seed(2);
    const torch::Tensor sample = torch::randn({100, 8}) * 7.0 + 1.0;
    st.init(sample, 3);
    // E‖s·x‖ = √d_in over the sample.
    EXPECT_NEAR((sample * st.scale()).norm(2, 1).mean().item<double>(), std::sqrt(8.0), 1e-4);
    ASSERT_GT(std::abs(st.scale() - 1.0), 0.5);  // a real rescaling
    st.b_enc = torch::randn({32}) * 0.3;
    if (arch == SaeArchitecture::JumpReLU) st.log_threshold = torch::full({32}, std::log(0.3));
    const torch::Tensor x = torch::randn({20, 8}) * 7.0 + 1.0;
    const models::SparseAutoencoder inner = st.current_sae(), folded = st.export_sae();
    const torch::Tensor f_inner = inner.encode(x * st.scale());
    const torch::Tensor f_folded = folded.encode(x);
    EXPECT_GT((f_inner > 0).sum().item<int64_t>(), 0);
    EXPECT_TRUE(all_close(f_folded, f_inner, 1e-4, 1e-5, "encode"));
    EXPECT_TRUE(all_close(folded.decode(f_folded), inner.decode(f_inner) / st.scale(), 1e-4, 1e-5, "decode"));
  }
}

TEST(SaeStep, DecoderRowsStayUnitNormAndLossFalls) {
  models::SaeConfig cfg;
  cfg.architecture = SaeArchitecture::TopK;
  cfg.d_in = 16;
  cfg.d_sae = 64;
  cfg.k = 4;
  SaeStepOptions opt;
  opt.lr = 1e-3;
  SaeTrainingState st(cfg, opt);
  SynthOptions so;
  so.n_features = 32;
  so.d = 16;
  const torch::Tensor dict = synth_dictionary(so);
  st.init(synth_batch(so, dict, 512, 999), 1);
  const double first = st.step(synth_batch(so, dict, 256, 0)).mse;
  double last = first;
  for (int s = 1; s < 200; ++s) last = st.step(synth_batch(so, dict, 256, s)).mse;
  EXPECT_TRUE(all_close(st.W_dec.norm(2, 1), torch::ones({64}), 1e-5, 1e-5, "decoder row norms"));
  EXPECT_LT(last, 0.5 * first);
}

TEST(SaeStep, SynthTopKRecoversTheDictionary) {
  // Issue 16 acceptance: TopK on 576 directions in 64 dimensions, two active per vector,
  // d_sae 1024, k 2: >= 90% of the directions recovered at cosine >= 0.9 (fixed seed).
  SynthOptions so;
  so.n_features = 576;
  so.d = 64;
  so.active = 2;
  so.seed = 0;
  models::SaeConfig cfg;
  cfg.architecture = SaeArchitecture::TopK;
  cfg.d_in = 64;
  cfg.d_sae = 1024;
  cfg.k = 2;
  SaeStepOptions opt;
  opt.lr = 2e-3;
  opt.dead_tokens = 200000;
  const SynthReport r = run_synth(so, cfg, opt, /*steps=*/3000, /*batch=*/1024, /*seed=*/0);
  std::printf("synth topk: recovered %.3f, MCC %.3f, EV %.3f, L0 %.2f, dead %.3f, %.1f s\n", r.recovered_fraction,
              r.mcc, r.explained_variance, r.l0, r.dead_fraction, r.seconds);
  EXPECT_GE(r.recovered_fraction, 0.90);
  EXPECT_GT(r.explained_variance, 0.8);
  EXPECT_LE(r.l0, 2.0);
}

TEST(SaeStep, ResamplingReplacesOnlyDeadLatentsFromHighLossInputs) {
  models::SaeConfig cfg;
  cfg.architecture = SaeArchitecture::Standard;
  cfg.d_in = 6;
  cfg.d_sae = 12;
  SaeStepOptions opt;
  opt.dead_tokens = 50;
  SaeTrainingState st(cfg, opt);
  torch::manual_seed(4);
  // One input far outside what the SAE reconstructs: every resampled row points along it.
  torch::Tensor x = torch::randn({40, 6}) * 0.1;
  x[17] = torch::tensor({0.f, 0.f, 0.f, 30.f, 0.f, 0.f});
  st.init(torch::randn({40, 6}), 1);
  st.step(x);  // non-zero Adam moments
  auto t = st.tensors();
  t["since_fired"] = (torch::arange(12) % 4 == 1).to(torch::kLong) * 100;  // latents 1, 5, 9 dead
  st.load_tensors(t, "test");
  const torch::Tensor W_dec0 = st.W_dec.clone(), W_enc0 = st.W_encT.clone();
  EXPECT_EQ(st.resample_dead(x, 7), 3);
  const torch::Tensor dead = torch::tensor({1, 5, 9}, torch::kLong), alive = torch::tensor({0, 2, 3, 4, 6, 7, 8, 10, 11}, torch::kLong);
  EXPECT_TRUE(torch::equal(st.W_dec.index_select(0, alive), W_dec0.index_select(0, alive)));
  EXPECT_TRUE(torch::equal(st.W_encT.index_select(0, alive), W_enc0.index_select(0, alive)));
  const torch::Tensor rows = st.W_dec.index_select(0, dead);
  const torch::Tensor dir = (x[17] * st.scale() - st.b_dec) / (x[17] * st.scale() - st.b_dec).norm();
  const torch::Tensor cos = rows.mv(dir) / rows.norm(2, 1);
  EXPECT_TRUE(all_close(cos, torch::ones({3}), 1e-5, 1e-5, "resampled directions"));
  EXPECT_EQ(st.b_enc.index_select(0, dead).abs().sum().item<float>(), 0.0f);
  const auto after = st.tensors();
  EXPECT_EQ(after.at("adam_m.W_dec").index_select(0, dead).abs().sum().item<float>(), 0.0f);
  EXPECT_GT(after.at("adam_m.W_dec").index_select(0, alive).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(st.dead_fraction(), 0.0);
}

TEST(SaeStep, BDecInitialisedAtTheMeanOrTheGeometricMedian) {
  models::SaeConfig cfg;
  cfg.architecture = SaeArchitecture::TopK;
  cfg.d_in = 3;
  cfg.d_sae = 8;
  cfg.k = 2;
  // 99 points around (1, 1, 1) and one far outlier: the mean moves toward it, the median does not.
  torch::manual_seed(3);
  torch::Tensor x = torch::ones({100, 3}) + torch::randn({100, 3}) * 0.01;
  x[99] = torch::tensor({1000.f, 0.f, 0.f});
  SaeTrainingState mean(cfg, {}), median(cfg, {});
  mean.init(x, 0);
  median.init(x, 0, /*geometric_median=*/true);
  const double s = mean.scale();  // b_dec lives in the normalised space
  EXPECT_TRUE(all_close(mean.b_dec, x.mean(0) * s, 1e-5, 1e-6, "mean"));
  EXPECT_TRUE(all_close(median.b_dec / s, torch::ones({3}), 0.0, 0.02, "geometric median"));
  // Encoder = decoder transposed; decoder rows unit norm (TopK).
  EXPECT_TRUE(torch::equal(mean.W_encT, mean.W_dec));
  EXPECT_TRUE(all_close(mean.W_dec.norm(2, 1), torch::ones({8}), 1e-5, 1e-6, "row norms"));
}

TEST(SaeSynth, HungarianMatchingIsOptimal) {
  // 3x4: the greedy row-by-row choice (row 0 -> col 0) loses to the optimum 0->1, 1->0, 2->3.
  const torch::Tensor s = torch::tensor({{0.9, 0.85, 0.1, 0.0}, {0.88, 0.1, 0.2, 0.0}, {0.0, 0.0, 0.3, 0.5}});
  EXPECT_EQ(max_weight_matching(s), (std::vector<int64_t>{1, 0, 3}));
}

}  // namespace
}  // namespace circuitlab::train
