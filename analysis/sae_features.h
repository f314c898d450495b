// Feature dashboards of a sparse autoencoder: for every latent, where it fires (density, an
// activation histogram, the top activating contexts and a few from lower quantiles), what it
// writes to the logits (its decoder row along the model's direct path, final LayerNorm folded as
// TransformerLens does), its nearest latents by decoder cosine, and a short automatic label.
// One streaming pass over evenly spaced windows of a token shard. The file format
// (features.json) is analysis/SAE_FEATURES_JSON.md. Not an evaluation (sae_eval.h); never
// changes the model or the SAE.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"
#include "models/sae.h"

namespace circuitlab::data {
class TokenNamer;
}

namespace circuitlab::analysis {

struct SaeFeatureOptions {
  int64_t tokens = 131072;  // positions read (whole windows; at least one window)
  int64_t context = 0;      // window length (0: the SAE's context_size, else min(n_ctx, 128))
  int64_t batch_windows = 8;
  int top = 10;                                   // top examples per latent
  std::vector<double> quantiles = {0.1, 0.3, 0.5};  // quantile examples (of the reservoir)
  int reservoir = 32;       // firing windows sampled per latent for the quantile examples
  int before = 10, after = 4;  // context tokens around an example's peak
  int logit_tokens = 10;    // promoted and suppressed tokens listed
  int neighbors = 5;        // nearest latents by decoder cosine
  uint64_t seed = 0;        // the reservoir's random priorities
};

// The fixed bins of every latent's histogram of log10(activation).
inline constexpr double kFeatureHistLog10Lo = -4.0;
inline constexpr double kFeatureHistWidth = 0.1;
inline constexpr int kFeatureHistBins = 80;

struct FeatureExample {
  double act = 0;       // the window's peak activation of the latent
  int64_t offset = 0;   // shard offset of the window's first token
  int64_t window_pos = 0;  // the peak's position in the window
  int peak = 0;         // the peak's index in ids/acts
  std::vector<int32_t> ids;  // GPT-2 ids of the context (the shard's own)
  std::vector<double> acts;  // the latent's activation at each
  double quantile = -1; // quantile examples only
};

struct TokenEffect {
  int32_t gpt2_id = 0;
  double value = 0;
};

struct LatentFeatures {
  int64_t index = 0;
  int64_t fired = 0;
  double sum = 0, max = 0;
  std::vector<int64_t> hist;  // kFeatureHistBins counts
  std::vector<FeatureExample> top, quantiles;
  std::vector<TokenEffect> promoted, suppressed;  // suppressed: most negative first
  std::vector<std::pair<int64_t, double>> neighbors;  // (index, cosine), descending
};

struct SaeFeatures {
  int64_t tokens = 0, windows = 0, context = 0;
  std::string logit_path;  // "" when the hook has no direct path to the logits (e.g. hook_q)
  std::vector<LatentFeatures> latents;
};

// Each decoder row carried to the unembedding along the model's direct path (SAE_FEATURES_JSON.md):
// W_dec [S, d_in] -> [S, d_model] float, so that `directions · W_U` are the latents' direct logit
// effects (model ids). Undefined tensor when the hook has no such path. *path_out: the path's
// name. Error naming the hook when the SAE does not fit the model.
torch::Tensor sae_logit_directions(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                   std::string* path_out = nullptr);

// The streaming pass. progress(windows_done, windows_total) after each batch, when set.
// Error naming the hook when the model lacks it or its width is not d_in; Error when the shard is
// shorter than one window.
SaeFeatures compute_sae_features(models::HookedTransformer& model, const models::SparseAutoencoder& sae,
                                 const data::TokenShard& shard, const std::optional<data::VocabMap>& vocab_map,
                                 const SaeFeatureOptions& opt,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

// The automatic label of SAE_FEATURES_JSON.md from a latent's top examples and promoted tokens.
std::string feature_label(const LatentFeatures& lf, const data::TokenNamer& namer);

// features.json's document (everything but created_utc/elapsed_s, which the caller adds).
// `meta` supplies "sae", "model" and "data" objects' paths: {"sae_dir", "model_dir", "data_dir", "split"}.
nlohmann::json sae_features_json(const SaeFeatures& f, const models::SparseAutoencoder& sae,
                                 const models::ModelConfig& model_cfg, bool compact_vocab,
                                 const SaeFeatureOptions& opt, const data::TokenNamer& namer, const nlohmann::json& meta);

}  // namespace circuitlab::analysis
