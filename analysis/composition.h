// Q-, K- and V-composition scores (paper §"Analyzing a Two-Layer Model" with its erratum: the
// true Frobenius norm of the product, no cyclic shortcut) for every (earlier, later) head pair,
// in TransformerLens's pairing: left = OV^{h1}; right = QK^{h2} (q), (QK^{h2})ᵀ (k), OV^{h2} (v).
// Plus the random baseline. Not a plotting helper: scores only.
#pragma once
#include <cstdint>
#include <vector>

#include "analysis/circuit_weights.h"

namespace circuitlab::analysis {

enum class CompKind { Q = 0, K = 1, V = 2 };

struct CompositionScores {
  int L = 0, H = 0;
  std::vector<double> q, k, v;  // [L][H][L][H] flattened, 0 where l1 >= l2
  size_t index(int l1, int h1, int l2, int h2) const { return ((static_cast<size_t>(l1) * H + h1) * L + l2) * H + h2; }
  double at(CompKind kind, int l1, int h1, int l2, int h2) const;
};

// Fast path, exact: ‖L·R‖² = ⟨LᵀL, R·Rᵀ⟩ with each head's D×D product LᵀL = W_Oᵀ·(W_VᵀW_V)·W_O
// (and likewise for R·Rᵀ) formed block by block from its Dh×Dh Gram core (upper column blocks:
// symmetric), the inner products one GEMM per block pair and group of later layers
// (batched_gram.h: sym_product_inner). No QR, no cyclic shortcut.
// dtype: precision of the D×D products and the inner-product GEMM (norms and Dh×Dh cores double).
CompositionScores composition_scores(const CircuitWeights& w, torch::Dtype dtype = torch::kFloat64);

// One pair, straight from FactoredMatrix (the definition; also the tests' middle reference).
double composition_score_pair(const CircuitWeights& w, CompKind kind, int l1, int h1, int l2, int h2);

struct CompositionBaseline {
  double mean = 0, std = 0;
  int n_samples = 0;
  double inv_sqrt_d_model = 0;
};
// Mean/std of the score over n random pairs A = a1·a2ᵀ, B = b1·b2ᵀ, a*, b* [D, Dh] iid N(0,1)
// (the score is scale-free, so the init scale does not matter). Deterministic in `seed`.
CompositionBaseline random_composition_baseline(int d_model, int d_head, int n_samples, uint64_t seed);

}  // namespace circuitlab::analysis
