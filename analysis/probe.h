// Linear probes (issue 18 item 3): is a property linearly present at a hook point? Features are
// activations read with models/run_to_hook.h, labels come from a {"text","label"} JSONL file or
// from the tokens themselves (repeat, next-is); the probe is softmax regression (binary = C 2)
// on standardised features, full-batch LBFGS with L2, scored on a seeded held-out split against
// a majority-class and a random-direction baseline. Not a steering tool (analysis/steering.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/shards.h"
#include "data/vocab_map.h"
#include "models/hooked_transformer.h"

namespace circuitlab::analysis {

enum class ProbePosition { Last, Mean, All };
ProbePosition parse_probe_position(const std::string& s);  // Error naming --position

// A labelled set of rows: X [N, D] features, y [N] class index, group [N] (the text or window a
// row came from: the held-out split is by group, so positions of one window never straddle it).
struct ProbeData {
  torch::Tensor X, y, group;
  std::vector<std::string> classes;  // class index -> label as written (sorted)
};

// {"text": str, "label": str|int} per line. Error naming the file, the line and the field;
// Error for an empty file. classes sorted (ints as their decimal strings).
struct LabeledTexts {
  std::vector<std::string> texts;
  std::vector<int64_t> labels;
  std::vector<std::string> classes;
};
LabeledTexts read_probe_jsonl(const std::string& path);

// Per text: model ids [T] (BOS first); one row per text (Last, Mean) or per position (All).
// Returns one ProbeData per hook (same order), features read in one forward per text.
std::vector<ProbeData> text_features(models::HookedTransformer& model, const std::vector<std::vector<int64_t>>& ids,
                                     const LabeledTexts& lt, const std::vector<std::string>& hooks, ProbePosition pos);

// Token-derived labels over `windows` windows of n_ctx tokens evenly spaced over a shard (ids
// mapped through vocab_map when given); one row per position. kind "repeat": the token occurs
// earlier in its window; "next-is": the next token is `token` (model id; the last position is
// dropped). Classes "0"/"1".
std::vector<ProbeData> token_features(models::HookedTransformer& model, const data::TokenShard& shard,
                                      const std::optional<data::VocabMap>& vocab_map, const std::string& kind,
                                      int64_t token, int64_t windows, const std::vector<std::string>& hooks);

// Hooks a --hook names: a full or short name ("blocks.1.hook_resid_post", "resid_post" with layer
// on the name via hook_name), or a pattern across layers ("resid_post" for a per-layer kind,
// "blocks.*.hook_resid_post"). Error naming the hook when the model lacks it.
std::vector<std::string> expand_probe_hooks(const models::HookedTransformer& model, const std::string& spec);

struct ProbeOptions {
  double l2 = 1e-3;       // L2 weight on W (mean over rows of the CE loss + l2·|W|²/2)
  int epochs = 100;       // LBFGS outer steps
  uint64_t seed = 0;      // split and random direction
  double holdout = 0.2;   // fraction of groups held out
};

struct ProbeResult {
  torch::Tensor W, b, mean, std;  // [D, C], [C], [D], [D]: logits = ((x − mean)/std)·W + b
  torch::Tensor direction;        // [D] binary only: unit (W[:,1] − W[:,0])/std in activation space
  double train_acc = 0, test_acc = 0;
  double majority_acc = 0;        // held-out accuracy of the training split's majority class
  double random_acc = 0;          // held-out accuracy of a fixed random unit direction (standardised
                                  // space) with a fitted per-class scale and bias
  std::vector<int64_t> counts, train_counts, test_counts;  // per class
  int64_t n_train = 0, n_test = 0;
};

// Error when there is one class only, or no rows on either side of the split.
ProbeResult train_probe(const ProbeData& d, const ProbeOptions& o);

}  // namespace circuitlab::analysis
