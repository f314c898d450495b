// Unit tests of models/gemm: the oneDNN products against a float64 LibTorch reference for every
// operand layout the model passes (row-major, transposed views, row blocks of a wider buffer,
// bias, accumulate into a strided output, per-head results), and the autograd fall-back.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/gemm.h"
#include "tests/models/test_util.h"

namespace circuitlab::models {
namespace {

using circuitlab::testing::all_close;

// float32 products of length-K dot products against a float64 reference: rounding only.
constexpr double kGemmRtol = 1e-5;
constexpr double kGemmAtol = 1e-5;

torch::Tensor ref_mm(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
}

TEST(Gemm, LinearMatchesReferenceForEveryLayout) {
  torch::manual_seed(1);
  const int64_t M = 37, K = 70, N = 53;
  torch::Tensor x = torch::randn({M, K}), w = torch::randn({K, N}), b = torch::randn({N});
  torch::Tensor xT = torch::randn({K, M}).t(), wT = torch::randn({N, K}).t();  // transposed views
  torch::Tensor wide = torch::randn({M, K + 9});
  torch::Tensor xblock = wide.slice(1, 4, 4 + K);  // row-major, leading dimension K + 9
  for (const auto& [name, xa, wa] : std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>>{
           {"NN", x, w}, {"TN", xT, w}, {"NT", x, wT}, {"TT", xT, wT}, {"block", xblock, w}}) {
    EXPECT_TRUE(all_close(gemm::mm(xa, wa), ref_mm(xa, wa), kGemmRtol, kGemmAtol, "mm " + name));
    EXPECT_TRUE(all_close(gemm::linear(xa, wa, b), ref_mm(xa, wa) + b.to(torch::kDouble), kGemmRtol, kGemmAtol,
                          "linear " + name));
  }
}

// One row (a one-token forward): `b.expand({1, N}).contiguous()` is b's own storage, so the
// product must go into a copy; the bias (a model weight) stays as it was.
TEST(Gemm, LinearOfOneRowLeavesTheBiasUnchanged) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({1, 16}), w = torch::randn({16, 8}), b = torch::randn({8});
  const torch::Tensor before = b.clone();
  for (int rep = 0; rep < 2; ++rep) {
    const torch::Tensor y = gemm::linear(x, w, b);
    EXPECT_TRUE(all_close(y, ref_mm(x, w) + b.to(torch::kDouble), kGemmRtol, kGemmAtol, "one-row linear"));
  }
  EXPECT_TRUE(torch::equal(b, before));
}

TEST(Gemm, MmIntoOverwritesOrAccumulatesIntoAStridedBlock) {
  torch::manual_seed(2);
  const int64_t M = 20, K = 33, N = 17;
  torch::Tensor a = torch::randn({M, K}), b = torch::randn({N, K}).t();
  torch::Tensor buf = torch::randn({M, N + 5});
  torch::Tensor before = buf.clone();
  torch::Tensor c = buf.slice(1, 2, 2 + N);  // [M, N], leading dimension N + 5
  gemm::mm_into(c, a, b, 1.0f);
  EXPECT_TRUE(all_close(c, before.slice(1, 2, 2 + N).to(torch::kDouble) + ref_mm(a, b), kGemmRtol, kGemmAtol, "beta 1"));
  EXPECT_TRUE(torch::equal(buf.slice(1, 0, 2), before.slice(1, 0, 2)));  // columns outside c untouched
  EXPECT_TRUE(torch::equal(buf.slice(1, 2 + N), before.slice(1, 2 + N)));
  gemm::mm_into(c, a, b);
  EXPECT_TRUE(all_close(c, ref_mm(a, b), kGemmRtol, kGemmAtol, "beta 0"));
}

TEST(Gemm, BatchedProductsMatchReferenceForEveryLayout) {
  torch::manual_seed(9);
  const int64_t n = 7, M = 9, K = 13, N = 11;
  torch::Tensor a = torch::randn({n, M, K}), b = torch::randn({n, K, N});
  torch::Tensor aT = torch::randn({n, K, M}).transpose(1, 2), bT = torch::randn({n, N, K}).transpose(1, 2);
  for (const auto& [name, x, y] : std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>>{
           {"NN", a, b}, {"TN", aT, b}, {"NT", a, bT}, {"TT", aT, bT}}) {
    torch::Tensor ref = torch::bmm(x.to(torch::kDouble), y.to(torch::kDouble));
    EXPECT_TRUE(all_close(gemm::bmm(x, y), ref, kGemmRtol, kGemmAtol, "bmm " + name));
  }
}

TEST(Gemm, MmIntoBatchesWithAlphaAndBeta) {
  torch::manual_seed(10);
  const int64_t n = 4, M = 6, K = 9, N = 5;
  torch::Tensor a = torch::randn({n, K, M}).transpose(1, 2), b = torch::randn({n, K, N});
  torch::Tensor c = torch::randn({n, M, N});
  torch::Tensor ref = 0.5 * c.to(torch::kDouble) + 2.0 * torch::bmm(a.to(torch::kDouble), b.to(torch::kDouble));
  gemm::mm_into(c, a, b, 0.5, 2.0);
  EXPECT_TRUE(all_close(c, ref, kGemmRtol, kGemmAtol, "batched alpha 2, beta 0.5"));
}

TEST(Gemm, BmmIntoWritesStridedItemsWithAlphaAndBeta) {
  // c's items are row blocks of a wider buffer (item stride 40, row stride 5): the block products
  // of the analysis' symmetric inner products. float32 (oneDNN) and float64 (LibTorch fallback).
  torch::manual_seed(11);
  for (auto dt : {torch::kFloat32, torch::kFloat64}) {
    const int64_t n = 5, M = 4, K = 7, N = 5;
    torch::Tensor a = torch::randn({n, K, M}, dt).transpose(1, 2), b = torch::randn({n, K, 9}, dt).narrow(2, 2, N);
    torch::Tensor buf = torch::randn({n, 40}, dt);
    torch::Tensor c = buf.narrow(1, 0, M * N).view({n, M, N});
    torch::Tensor before = c.to(torch::kDouble).clone(), tail = buf.narrow(1, M * N, 40 - M * N).clone();
    torch::Tensor prod = torch::bmm(a.to(torch::kDouble), b.to(torch::kDouble));
    gemm::bmm_into(c, a, b, 0.5, 2.0);
    EXPECT_TRUE(all_close(c, 0.5 * before + 2.0 * prod, kGemmRtol, kGemmAtol, "bmm_into beta 0.5"));
    gemm::bmm_into(c, a, b, 0.0, 3.0);
    EXPECT_TRUE(all_close(c, 3.0 * prod, kGemmRtol, kGemmAtol, "bmm_into beta 0"));
    EXPECT_TRUE(torch::equal(buf.narrow(1, M * N, 40 - M * N), tail)) << "bmm_into wrote outside its items";
  }
}

TEST(Gemm, BmmIntoTakesTwoBatchDimensionsOfStridedBlocks) {
  // The attention layout: per-(sequence, head) [T, Dh] blocks of a [B, T, 3, H, Dh] activation,
  // products written into the [B, T, H, Dh] blocks of another. float32 and float64.
  torch::manual_seed(12);
  for (auto dt : {torch::kFloat32, torch::kFloat64}) {
    const int64_t B = 3, T = 6, H = 2, Dh = 4;
    torch::Tensor qkv = torch::randn({B, T, 3, H, Dh}, dt);
    auto part = [&](int64_t p) { return qkv.select(2, p).permute({0, 2, 1, 3}); };  // [B, H, T, Dh]
    torch::Tensor scores = torch::empty({B, H, T, T}, dt);
    gemm::bmm_into(scores, part(0), part(1).transpose(-1, -2), 0.0, 0.5);
    torch::Tensor want = 0.5 * torch::matmul(part(0).to(torch::kDouble), part(1).to(torch::kDouble).transpose(-1, -2));
    EXPECT_TRUE(all_close(scores, want, kGemmRtol, kGemmAtol, "q·kᵀ blocks"));
    torch::Tensor z = torch::zeros({B, T, H, Dh}, dt);
    torch::Tensor zb = z.permute({0, 2, 1, 3});
    gemm::bmm_into(zb, scores.transpose(-1, -2), part(2), 1.0);  // accumulate onto zeros
    EXPECT_TRUE(all_close(zb, torch::matmul(want.transpose(-1, -2), part(2).to(torch::kDouble)), kGemmRtol, kGemmAtol,
                          "Pᵀ·v into z blocks"));
  }
}

TEST(Gemm, HeadResultsEqualPerHeadProducts) {
  torch::manual_seed(3);
  const int64_t B = 2, T = 5, H = 3, Dh = 4, D = 7;
  torch::Tensor z = torch::randn({B, H, T, Dh}).permute({0, 2, 1, 3});  // [B, T, H, Dh] as attention makes it
  torch::Tensor W_O = torch::randn({H, Dh, D});
  torch::Tensor ref = torch::einsum("bthk,hkd->bthd", {z.to(torch::kDouble), W_O.to(torch::kDouble)});
  EXPECT_TRUE(all_close(gemm::head_results(z, W_O), ref, kGemmRtol, kGemmAtol, "head_results"));
}

TEST(Gemm, GradientsStillFlowWhenAutogradNeedsThem) {
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({6, 5}, torch::requires_grad()), w = torch::randn({5, 4}, torch::requires_grad());
  torch::Tensor b = torch::randn({4}, torch::requires_grad());
  gemm::linear(x, w, b).sum().backward();
  ASSERT_TRUE(x.grad().defined() && w.grad().defined() && b.grad().defined());
  EXPECT_TRUE(all_close(w.grad(), x.detach().sum(0, true).t().expand({5, 4}), kGemmRtol, kGemmAtol, "dW"));
  EXPECT_TRUE(all_close(b.grad(), torch::full({4}, 6.0), kGemmRtol, kGemmAtol, "db"));
}

TEST(Gemm, BackendIsReported) {
  const std::string b = gemm::backend();
  EXPECT_TRUE(b == "dnnl" || b == "torch") << b;
}

}  // namespace
}  // namespace circuitlab::models
