// The synthetic SAE benchmark. See sae_synth.h.
#include "train/sae_synth.h"

#include <chrono>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/splitmix.h"

namespace circuitlab::train {

torch::Tensor synth_dictionary(const SynthOptions& o) {
  if (o.n_features < 1 || o.d < 1) fail("synth: n_features and d must be >= 1");
  auto gen = at::detail::createCPUGenerator(splitmix64(o.seed ^ 0xD1C7ull));
  torch::Tensor D = at::normal(0.0, 1.0, {o.n_features, o.d}, gen);
  return D / D.norm(2, 1, true);
}

torch::Tensor synth_batch(const SynthOptions& o, const torch::Tensor& dictionary, int64_t n, uint64_t index,
                          torch::Tensor* codes_out) {
  if (o.active < 1 || o.active > o.n_features) fail("synth: active must be in [1, n_features]");
  std::mt19937_64 rng(splitmix64(splitmix64(o.seed) + index));
  std::uniform_real_distribution<double> mag(o.min_magnitude, o.max_magnitude), unit(0.0, 1.0);
  std::uniform_int_distribution<int64_t> pick(0, o.n_features - 1);
  torch::Tensor codes = torch::zeros({n, o.n_features});
  float* c = codes.data_ptr<float>();
  const double p = static_cast<double>(o.active) / o.n_features;
  for (int64_t b = 0; b < n; ++b) {
    float* row = c + b * o.n_features;
    std::vector<int64_t> fired;
    if (o.bernoulli) {
      for (int64_t f = 0; f < o.n_features; ++f)
        if (unit(rng) < p) fired.push_back(f);
    } else {
      while (static_cast<int64_t>(fired.size()) < o.active) {
        const int64_t f = pick(rng);
        if (row[f] == 0.0f) {
          row[f] = 1.0f;  // marks "taken" until the magnitudes are drawn
          fired.push_back(f);
        }
      }
    }
    if (o.group_size > 1 && o.group_p > 0) {
      const size_t n0 = fired.size();
      for (size_t i = 0; i < n0; ++i) {
        const int64_t g0 = fired[i] / o.group_size * o.group_size;
        for (int64_t f = g0; f < std::min(g0 + o.group_size, o.n_features); ++f)
          if (row[f] == 0.0f && f != fired[i] && unit(rng) < o.group_p) {
            row[f] = 1.0f;
            fired.push_back(f);
          }
      }
    }
    for (int64_t f : fired) row[f] = static_cast<float>(mag(rng));
  }
  if (codes_out) *codes_out = codes;
  return codes.mm(dictionary);
}

std::vector<int64_t> max_weight_matching(const torch::Tensor& score_in) {
  // Hungarian algorithm with potentials (rows <= cols), minimising −score.
  const torch::Tensor score = score_in.to(torch::kDouble).contiguous();
  const int64_t n = score.size(0), m = score.size(1);
  TORCH_CHECK(n <= m, "max_weight_matching: rows must not exceed columns");
  const double* a = score.data_ptr<double>();
  const double INF = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<int64_t> p(m + 1, 0), way(m + 1, 0);
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(m + 1, INF);
    std::vector<char> used(m + 1, 0);
    do {
      used[j0] = 1;
      const int64_t i0 = p[j0];
      double delta = INF;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = -a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int64_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  std::vector<int64_t> assign(n, -1);
  for (int64_t j = 1; j <= m; ++j)
    if (p[j] > 0) assign[p[j] - 1] = j - 1;
  return assign;
}

SynthReport score_synth(const models::SparseAutoencoder& sae, const SynthOptions& o, const torch::Tensor& dictionary,
                        int64_t eval_vectors) {
  SynthReport r;
  const torch::Tensor dirs = sae.W_dec / sae.W_dec.norm(2, 1, true).clamp_min(1e-12);  // [S, d]
  const torch::Tensor cos = dictionary.mm(dirs.t());                                    // [n_features, S]
  r.recovered_fraction = (std::get<0>(cos.max(1)) >= 0.9).to(torch::kDouble).mean().item<double>();
  if (cos.size(0) <= cos.size(1)) {
    const std::vector<int64_t> match = max_weight_matching(cos);
    const float* cp = cos.contiguous().data_ptr<float>();
    double s = 0;
    for (size_t i = 0; i < match.size(); ++i) s += cp[i * cos.size(1) + match[i]];
    r.mcc = s / static_cast<double>(match.size());
  } else {  // more true directions than latents: match each latent to a direction
    const std::vector<int64_t> match = max_weight_matching(cos.t());
    const torch::Tensor ct = cos.t().contiguous();
    const float* cp = ct.data_ptr<float>();
    double s = 0;
    for (size_t i = 0; i < match.size(); ++i) s += cp[i * ct.size(1) + match[i]];
    r.mcc = s / static_cast<double>(cos.size(0));  // unmatched directions count as 0
  }
  const torch::Tensor x = synth_batch(o, dictionary, eval_vectors, /*index=*/~uint64_t(0));
  const torch::Tensor f = sae.encode(x);
  const torch::Tensor x_hat = sae.decode(f);
  const double var = (x - x.mean(0)).pow(2).sum().item<double>();
  r.explained_variance = 1.0 - (x_hat - x).pow(2).sum().item<double>() / var;
  r.l0 = (f > 0).sum(1).to(torch::kDouble).mean().item<double>();
  r.dead_fraction = ((f > 0).sum(0) == 0).to(torch::kDouble).mean().item<double>();
  return r;
}

SynthReport run_synth(const SynthOptions& o, const models::SaeConfig& cfg, const SaeStepOptions& step_opt,
                      int64_t steps, int64_t batch, uint64_t seed,
                      const std::function<void(int64_t, const SaeStepStats&)>& on_step,
                      models::SparseAutoencoder* trained) {
  if (cfg.d_in != o.d) fail("synth: the SAE's d_in (" + std::to_string(cfg.d_in) + ") must equal d (" + std::to_string(o.d) + ")");
  if (steps < 1 || batch < 1) fail("synth: steps and batch must be >= 1 (zero tokens to train on)");
  const torch::Tensor dict = synth_dictionary(o);
  SaeTrainingState state(cfg, step_opt);
  state.init(synth_batch(o, dict, std::max<int64_t>(batch, 4096), /*index=*/~uint64_t(1)), seed);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const SaeStepStats st = state.step(synth_batch(o, dict, batch, static_cast<uint64_t>(s)));
    if (on_step) on_step(s + 1, st);
  }
  SynthReport r;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const models::SparseAutoencoder sae = state.export_sae();
  r = score_synth(sae, o, dict);
  r.steps = steps;
  r.seconds = secs;
  if (trained) *trained = sae;
  return r;
}

}  // namespace circuitlab::train
