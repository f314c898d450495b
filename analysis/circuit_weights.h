// The weights the paper's circuits are built from, LayerNorm folded, in the analysis layer's
// precision: per-head W_Q, W_K, W_V [D, Dh] and W_O [Dh, D] as Eigen doubles, the (large)
// embedding/unembedding as tensors, and the D×D Gram matrices the full-vocab circuits need.
// Not a model: nothing here runs a forward pass or changes the model's parameters.
//
// Folding (the documented choice, TransformerLens `from_pretrained` defaults):
//  * LN models: ln1.w of each layer is folded into that layer's reading weights and the
//    reading weights are centred (W' = P·diag(w)·W, P = I − 11ᵀ/D: LN's mean subtraction);
//    writing weights W_E and W_O are centred (W·P); ln_final.w is folded into W_U and W_U is
//    centred over d_model. LN's division by the per-token scale σ is dropped (a per-token scalar).
//  * All models: W_U is centred over the vocabulary (logits are softmax-invariant to it).
//  * Biases (b_Q, b_K, b_V, b_O, b_U, ln biases) are not part of the token circuits.
//  * Positions: token-token circuits exclude W_pos (standard: added to the residual, left out
//    here as TransformerLens's full circuits do; shortformer: enters only Q/K inputs anyway).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "analysis/eigen_bridge.h"
#include "analysis/factored_matrix.h"
#include "models/config.h"

namespace circuitlab::analysis {

struct FoldOptions {
  bool fold_ln = true;          // only when the model has LN
  bool center_writing = true;   // only when the model has LN
  bool center_unembed = true;
  // dtype of the large GEMMs: the V-sized ones (Gram matrices of W_E / W_U) and the batched
  // D×D×(L·H·Dh) products behind the positivity cores and the composition Grams. Eigen
  // solves, norms, the per-head Dh×Dh Grams and the final sums stay double. kFloat64 for tests
  // and toys; kFloat32 halves the GPT-2-sized cost (analyze's "auto" picks it above 2e9 V·D²).
  torch::Dtype big_dtype = torch::kFloat64;
};

// The per-head factors stacked for batched GEMMs, float64: Q, K, V [L*H, D, Dh], O [L*H, Dh, D],
// and their Dh×Dh Grams S_Q = W_QᵀW_Q, S_K, S_V likewise, S_O = W_O·W_Oᵀ [L*H, Dh, Dh].
struct StackedHeads {
  torch::Tensor Q, K, V, O;
  torch::Tensor S_Q, S_K, S_V, S_O;
};

struct CircuitWeights {
  models::ModelConfig cfg;
  int L = 0, H = 0, D = 0, Dh = 0, V = 0, V_out = 0;
  FoldOptions opts;
  bool tied = false;       // W_U = W_Eᵀ on disk (GPT-2): W_U' is kept implicit, see below
  torch::Tensor W_E;       // [V, D] folded (centred), big_dtype
  torch::Tensor W_U;       // [D, V_out] folded; undefined when tied
  torch::Tensor b_U;       // [V_out] b_U + ln_final.b·W_U (zeros when absent), float64
  Mat unembed_left;        // [D, D] tied only: W_U' = unembed_left · W_E_rawᵀ · C_vocab
  torch::Tensor W_E_raw;   // [V, D] tied only, big_dtype
  std::vector<Mat> W_Q, W_K, W_V;  // [L*H] of [D, Dh], folded
  std::vector<Mat> W_O;            // [L*H] of [Dh, D], centred
  StackedHeads stacked;            // the same factors stacked (fold_circuit_weights fills it)

  int idx(int layer, int head) const { return layer * H + head; }
  FactoredMatrix OV(int layer, int head) const;  // W_V·W_O   [D, D], rank Dh
  FactoredMatrix QK(int layer, int head) const;  // W_Q·W_Kᵀ  [D, D], rank Dh
  torch::Tensor W_U_folded() const;              // [D, V_out] (materialised when tied)
  std::string folding_statement() const;         // one paragraph for analysis.json
};

// w.stacked when filled, else built from the per-head matrices (hand-made CircuitWeights).
StackedHeads stack_heads(const CircuitWeights& w);

// sd: TransformerLens state-dict names (embed.W_E, blocks.{l}.attn.W_Q, blocks.{l}.ln1.w,
// ln_final.w, unembed.W_U, ...). Error naming the missing tensor / wrong shape.
CircuitWeights fold_circuit_weights(const models::ModelConfig& cfg,
                                    const std::map<std::string, torch::Tensor>& sd, FoldOptions opts = {});

// The two D×D Gram matrices behind every full-vocabulary circuit (double):
//   qk = W_E'ᵀ·W_E'  (token-token QK and K-composition circuits)
//   ov = W_U'·W_E'   (full OV circuits)
// One V×D×D GEMM each (one in all for tied models); symmetric ones through gram_tn.
struct EmbedGrams {
  Mat qk;  // [D, D]
  Mat ov;  // [D, D]
};
EmbedGrams embed_grams(const CircuitWeights& w);

}  // namespace circuitlab::analysis
