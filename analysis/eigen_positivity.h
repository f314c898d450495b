// Eigenvalue positivity Σλ/Σ|λ| (paper §"Detecting Copying Behavior"; ICL paper appendix) of
// the full-vocabulary OV circuit W_E'·OV·W_U', the token-token QK circuit W_E'·QK·W_E'ᵀ and,
// for heads of layer ≥ 1, the K-composition term W_E'·QK^{h2}·(OV^{h1})ᵀ·W_E'ᵀ. Every V×V
// matrix is reduced to a Dh×Dh one through λ(AB) = λ(BA) and the D×D Grams of circuit_weights.h.
// Not a head detector: attention-pattern scores live in head_scores.h.
#pragma once
#include <optional>
#include <vector>

#include "analysis/circuit_weights.h"

namespace circuitlab::analysis {

// Dh×Dh matrices whose eigenvalues are the nonzero eigenvalues of the named V×V circuit.
Mat ov_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head);  // W_O·G_ov·W_V
Mat qk_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head);  // W_Kᵀ·G_qk·W_Q
// K-composition core of head (layer, head) with earlier-layer OV mixture M = Σ_k c_k·(OV^k)ᵀ
// [D, D]: W_Kᵀ·M·G_qk·W_Q (the circuit W_E'·QK·M·W_E'ᵀ).
Mat kcomp_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head, const Mat& ov_mix_T);

double positivity_of(const Mat& square);  // Σλ/Σ|λ| of a small dense matrix (Eigen, double)

struct HeadPositivity {
  int layer = 0, head = 0;
  double ov = 0, ov_resid = 0, qk = 0;   // full OV, OV alone [D,D], full QK
  double ov_norm = 0, qk_norm = 0;       // Frobenius norms of OV, QK [D,D]
  std::optional<double> kcomp;           // layer ≥ 1 with a source head
  int kcomp_src_layer = -1, kcomp_src_head = -1;
  std::optional<double> kcomp_weighted;  // ICL-paper variant (prev-token-score weights)
  std::optional<double> kcomp_trace_weighted;
};

// prev_token_scores: [L*H] (layer-major) or empty (then the K-composition terms are null).
// h1 for kcomp = the earlier-layer head with the largest prev-token score.
// Batched: all heads' cores from one GEMM per circuit (w.opts.big_dtype) plus bmm's, the
// weighted K-composition mixture as a running [D, D] sum, and the Dh×Dh eigenproblems solved
// in parallel over the intra-op threads (at::get_num_threads()), each in double (Eigen).
std::vector<HeadPositivity> head_positivities(const CircuitWeights& w, const EmbedGrams& g,
                                              const std::vector<double>& prev_token_scores);

// Pearson r between the heads' OV-alone and full-circuit OV copying scores (ov_resid, ov):
// TransformerLens Main_Demo finds them "highly (but not perfectly!) correlated" on GPT-2 small.
// Over the heads where both are finite; r is NaN with fewer than two such heads or zero variance.
struct OvCopyingCorrelation {
  double pearson_r = 0;
  int heads = 0;  // heads counted
};
OvCopyingCorrelation ov_copying_correlation(const std::vector<HeadPositivity>& heads);

}  // namespace circuitlab::analysis
