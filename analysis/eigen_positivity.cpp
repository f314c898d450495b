// Eigenvalue positivity through Dh×Dh cores (see eigen_positivity.h).
#include "analysis/eigen_positivity.h"

#include <Eigen/Eigenvalues>

#include "data/error.h"

namespace circuitlab::analysis {

Mat ov_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head) {
  // W_E'·W_V·W_O·W_U' = A·B with A = W_E'·W_V [V,Dh], B = W_O·W_U' [Dh,V]: B·A = W_O·G_ov·W_V.
  const int i = w.idx(layer, head);
  return w.W_O[i] * g.ov * w.W_V[i];
}

Mat qk_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head) {
  // W_E'·W_Q·W_Kᵀ·W_E'ᵀ = A·B, A = W_E'·W_Q, B = W_Kᵀ·W_E'ᵀ: B·A = W_Kᵀ·G_qk·W_Q.
  const int i = w.idx(layer, head);
  return w.W_K[i].transpose() * g.qk * w.W_Q[i];
}

Mat kcomp_circuit_core(const CircuitWeights& w, const EmbedGrams& g, int layer, int head, const Mat& ov_mix_T) {
  const int i = w.idx(layer, head);
  return w.W_K[i].transpose() * ov_mix_T * g.qk * w.W_Q[i];
}

double positivity_of(const Mat& m) {
  Eigen::EigenSolver<Mat> es(m, /*computeEigenvectors=*/false);
  if (es.info() != Eigen::Success) fail("eigen positivity: eigen solver did not converge");
  return eigen_positivity(es.eigenvalues());
}

std::vector<HeadPositivity> head_positivities(const CircuitWeights& w, const EmbedGrams& g,
                                              const std::vector<double>& prev) {
  const bool have_prev = prev.size() == static_cast<size_t>(w.L * w.H);
  std::vector<HeadPositivity> out;
  out.reserve(w.L * w.H);
  for (int l = 0; l < w.L; ++l) {
    // Earlier-layer mixtures for K-composition: the single strongest prev-token head, and the
    // ICL paper's prev-token-weighted sum over all earlier heads.
    Mat best_T, weighted_T;
    int bl = -1, bh = -1;
    if (have_prev && l > 0) {
      double best = -1;
      weighted_T = Mat::Zero(w.D, w.D);
      for (int l1 = 0; l1 < l; ++l1)
        for (int h1 = 0; h1 < w.H; ++h1) {
          const int j = w.idx(l1, h1);
          Mat ovT = w.W_O[j].transpose() * w.W_V[j].transpose();  // (OV)ᵀ [D, D]
          weighted_T += prev[j] * ovT;
          if (prev[j] > best) {
            best = prev[j];
            bl = l1;
            bh = h1;
            best_T = ovT;
          }
        }
    }
    for (int h = 0; h < w.H; ++h) {
      HeadPositivity p;
      p.layer = l;
      p.head = h;
      const int i = w.idx(l, h);
      p.ov = positivity_of(ov_circuit_core(w, g, l, h));
      p.ov_resid = positivity_of(w.W_O[i] * w.W_V[i]);
      p.qk = positivity_of(qk_circuit_core(w, g, l, h));
      p.ov_norm = w.OV(l, h).frobenius_norm();
      p.qk_norm = w.QK(l, h).frobenius_norm();
      if (bl >= 0) {
        p.kcomp = positivity_of(kcomp_circuit_core(w, g, l, h, best_T));
        p.kcomp_src_layer = bl;
        p.kcomp_src_head = bh;
        Mat core = kcomp_circuit_core(w, g, l, h, weighted_T);
        p.kcomp_weighted = positivity_of(core);
        p.kcomp_trace_weighted = core.trace();
      }
      out.push_back(p);
    }
  }
  return out;
}

}  // namespace circuitlab::analysis
