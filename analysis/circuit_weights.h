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
  // dtype of the large GEMMs: the V-sized ones (Gram matrices of W_E / W_U), the per-head
  // Dh×Dh Grams and the batched D×D×(L·H·Dh) products behind the positivity cores and the
  // composition Grams (results are stored in double). Eigen solves, norms and the final sums
  // stay double. kFloat64 for tests
  // and toys; kFloat32 halves the GPT-2-sized cost (analyze's "auto" picks it above 2e9 V·D²).
  torch::Dtype big_dtype = torch::kFloat64;
};

// The per-head factors stacked for batched GEMMs, float64: Q, K, V [L*H, D, Dh], O [L*H, Dh, D],
// and their Dh×Dh Grams S_Q = W_QᵀW_Q, S_K, S_V likewise, S_O = W_O·W_Oᵀ [L*H, Dh, Dh] (float64,
// multiplied in FoldOptions::big_dtype).
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
  Vec unembed_ln_w;        // [D] tied only, ln_final.w when folded (empty when not):
                           // W_U' = P·diag(unembed_ln_w)·W_E_rawᵀ·C_vocab (P, C: centring)
  torch::Tensor W_E_raw;   // [V, D] tied only, big_dtype
  StackedHeads stacked;    // the folded per-head factors and their Grams (fold_circuit_weights)

  int idx(int layer, int head) const { return layer * H + head; }
  // Head i's folded factors as read-only Eigen views into `stacked` (no copies):
  using HeadMap = Eigen::Map<const RowMajorMat>;
  HeadMap W_Q(int i) const { return head(stacked.Q, i); }  // [D, Dh]
  HeadMap W_K(int i) const { return head(stacked.K, i); }  // [D, Dh]
  HeadMap W_V(int i) const { return head(stacked.V, i); }  // [D, Dh]
  HeadMap W_O(int i) const { return head(stacked.O, i); }  // [Dh, D]
  FactoredMatrix OV(int layer, int head) const;  // W_V·W_O   [D, D], rank Dh
  FactoredMatrix QK(int layer, int head) const;  // W_Q·W_Kᵀ  [D, D], rank Dh
  torch::Tensor W_U_folded() const;              // [D, V_out] (materialised when tied)
  std::string folding_statement() const;         // one paragraph for analysis.json

 private:
  static HeadMap head(const torch::Tensor& stack, int i) {
    return HeadMap(stack.data_ptr<double>() + static_cast<int64_t>(i) * stack.size(1) * stack.size(2), stack.size(1),
                   stack.size(2));
  }
};

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
