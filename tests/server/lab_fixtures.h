// Test fixtures for the lab: small models written the way users' models are (a compact-vocab
// toy through models::save_model_dir, a Hugging Face-layout GPT-2 through make_tiny_gpt2.py),
// and a `circuitlab serve` child process on a free loopback port.
// Not test cases (api_test.cpp, e2e_test.cpp).
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <list>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "models/model_dir.h"
#include "models/sae.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

namespace circuitlab::labtest {

using circuitlab::testing::source_dir;

// Texts whose tokens the toy's compact vocabulary covers (the web page's default prompts among them).
inline std::vector<std::string> toy_vocab_texts() {
  return {"When Mary and John went to the store, John gave a drink to Mary.",
          "When Mary and John went to the store, Mary gave a drink to John.",
          "I went up to my friend and said Love Hate hello the cat sat on the mat.",
          "The quick brown fox jumps over the lazy dog. A B C D E F G 1 2 3"};
}

// A toy model to write: attention-only by default, or GPT-2 blocks (LayerNorm, GELU MLPs).
struct ToySpec {
  int n_layers = 2;
  int n_heads = 4;
  uint64_t seed = 1;
  bool mlp = false;
  std::vector<std::string> vocab_texts = toy_vocab_texts();  // its compact vocabulary: these texts' tokens
};

// A randomly initialised toy HookedTransformer on a compact vocabulary (BOS and " " always in
// it), written by the real model-dir writer; a large init range makes its attention sharp and
// its predictions decisive, so interventions visibly change outputs.
inline std::string make_toy_model_dir(const std::string& dir, const ToySpec& spec) {
  auto tok = data::Tokenizer::load_default();
  std::set<int32_t> ids{data::kEndOfText, 220};
  for (const auto& t : spec.vocab_texts)
    for (int32_t id : tok.encode(t)) ids.insert(id);
  data::VocabMap vm(std::vector<int32_t>(ids.begin(), ids.end()));
  models::ModelConfig cfg;
  cfg.n_layers = spec.n_layers;
  cfg.d_model = 64;
  cfg.n_heads = spec.n_heads;
  cfg.d_head = 16;
  cfg.n_ctx = 64;
  cfg.d_vocab = vm.size();
  cfg.d_vocab_out = vm.size();
  cfg.attn_only = !spec.mlp;
  cfg.initializer_range = 0.5;
  cfg.seed = static_cast<int>(spec.seed);
  torch::manual_seed(spec.seed);
  models::HookedTransformer model(cfg);
  models::save_model_dir(model, dir, &vm);
  return dir;
}

inline std::string make_toy_model_dir(const std::string& dir, int n_layers = 2, int n_heads = 4, uint64_t seed = 1) {
  ToySpec spec;
  spec.n_layers = n_layers;
  spec.n_heads = n_heads;
  spec.seed = seed;
  return make_toy_model_dir(dir, spec);
}

// The vocabulary of the lab-like toy with MLPs: ordinary English without the names and words
// of the front end's built-in examples (" Mary", " John", " Love", " Hate"), so its default
// examples must be chosen from its own vocabulary.
inline std::vector<std::string> mlp_toy_vocab_texts() {
  return {"When Alice and Bob went to the store, Bob gave a drink to Alice. When",
          "I went up to my friend and said good bad hello the cat sat on the mat.",
          "The quick brown fox jumps over the lazy dog. A B C D E F G 1 2 3"};
}

// A random SAE on `hook` of a d_in-wide activation, written by the real SAELens writer:
// encoder = decoder transposed (unit-norm rows), so each latent reads the direction it writes.
inline models::SparseAutoencoder make_toy_sae_dir(const std::string& dir, const std::string& hook, int64_t d_in,
                                                  int64_t d_sae = 32, int64_t k = 4, uint64_t seed = 11,
                                                  models::SaeArchitecture arch = models::SaeArchitecture::TopK) {
  models::SaeConfig cfg;
  cfg.architecture = arch;
  cfg.d_in = d_in;
  cfg.d_sae = d_sae;
  cfg.k = arch == models::SaeArchitecture::TopK ? k : 0;
  cfg.hook_name = hook;
  cfg.model_name = "toy";
  cfg.context_size = 64;
  models::SparseAutoencoder sae(cfg);
  torch::manual_seed(seed);
  auto dec = torch::randn({d_sae, d_in});
  sae.W_dec = dec / dec.norm(2, /*dim=*/1, /*keepdim=*/true);  // [S, d]
  sae.W_enc = sae.W_dec.t().contiguous() * 0.5;                  // [d, S]
  sae.b_enc = torch::randn({d_sae}) * 0.05;
  sae.b_dec = torch::randn({d_in}) * 0.1;
  models::save_sae(sae, dir);
  return models::load_sae(dir);
}

// One latent of a hand-written features.json: its label, one top example (context strings, the
// peak's index, and activations) and its promoted tokens; density 0 makes it "dead".
struct FeatureSpec {
  std::string label;
  std::vector<std::string> strs;
  int peak = 0;
  std::vector<std::string> promoted;
  double density = 0.01;
  double max = 1.0;
};

// features.json (analysis/SAE_FEATURES_JSON.md, format circuitlab-sae-features-v1) for `sae`,
// written by hand: `specs` for some latents, the rest labelled "latent <i>" (one example over letters).
inline void write_features_json(const std::string& path, const models::SparseAutoencoder& sae, const std::string& sae_dir,
                                const std::map<int64_t, FeatureSpec>& specs) {
  using nlohmann::json;
  const auto& c = sae.cfg;
  json latents = json::array();
  for (int64_t i = 0; i < c.d_sae; ++i) {
    FeatureSpec f;  // the rest: a plain label and one example over letters, promoting digits
    f.label = "latent " + std::to_string(i);
    f.strs = {" A", " B", " C", " D", " E"};
    f.peak = int(i % 5);
    f.promoted = {" 1", " 2"};
    if (auto it = specs.find(i); it != specs.end()) f = it->second;
    const bool dead = f.density == 0;
    json top = json::array(), promoted = json::array(), suppressed = json::array();
    if (!dead && !f.strs.empty()) {
      json acts = json::array(), ids = json::array();
      for (size_t t = 0; t < f.strs.size(); ++t) {
        acts.push_back(int(t) == f.peak ? f.max : (int(t) + 1 == f.peak ? 0.4 * f.max : 0.0));
        ids.push_back(int(t));
      }
      top.push_back({{"act", f.max}, {"offset", 100 * i}, {"peak", f.peak}, {"ids", ids}, {"strs", f.strs}, {"acts", acts}});
    }
    double v = 2.0;
    for (const auto& p : f.promoted) promoted.push_back({{"id", 1000 + i}, {"str", p}, {"value", v -= 0.25}});
    suppressed.push_back({{"id", 7}, {"str", " nothing"}, {"value", -1.5}});
    json hist = {{"first", 10}, {"counts", dead ? json::array() : json::array({1, 3, 5, 2})}};
    json neighbors = json::array({{{"index", (i + 1) % c.d_sae}, {"cosine", 0.5}}, {{"index", (i + 2) % c.d_sae}, {"cosine", 0.25}}});
    latents.push_back({{"index", i}, {"density", f.density}, {"fired", int(f.density * 1000)}, {"max", dead ? 0.0 : f.max},
                       {"mean", dead ? json(nullptr) : json(f.max / 2)}, {"label", dead ? "dead" : f.label},
                       {"hist", hist}, {"top", top}, {"quantiles", json::array()}, {"promoted", promoted},
                       {"suppressed", suppressed}, {"neighbors", neighbors}});
  }
  json doc = {
      {"format", "circuitlab-sae-features-v1"}, {"created_utc", "2026-01-01T00:00:00Z"}, {"elapsed_s", 0.1},
      {"sae", {{"dir", sae_dir}, {"name", "sae"}, {"architecture", models::sae_architecture_name(c.architecture)},
               {"d_in", c.d_in}, {"d_sae", c.d_sae}, {"k", c.k > 0 ? json(c.k) : json(nullptr)},
               {"hook_name", c.hook_name}, {"hook_head_index", nullptr}}},
      {"model", {{"dir", "model"}, {"d_vocab", 100}, {"compact_vocab", true}}},
      {"data", {{"dir", "data"}, {"split", "val"}, {"tokens", 1000}, {"windows", 10}, {"context", 100}}},
      {"options", {{"top", 1}, {"quantile_examples", json::array()}, {"reservoir", 0}, {"before", 8}, {"after", 2},
                   {"logit_tokens", 3}, {"neighbors", 2}, {"seed", 0}}},
      {"logit_path", "W_dec\u00b7ln_final\u00b7W_U"},
      {"histogram_bins", {{"log10_lo", -3.0}, {"width", 0.1}, {"count", 40}}},
      {"density_histogram", {{"log10_lo", -5.0}, {"width", 0.5}, {"counts", json::array({1, 2, 3})}, {"dead", 1}}},
      {"summary", {{"dead", 1}, {"dense_1pct", 0}, {"dense_10pct", 0}, {"mean_l0", 4.0}}},
      {"latents", latents}};
  std::ofstream(path) << doc.dump();
}

inline std::string make_gpt2_dir(const std::string& dir) {
  const auto r = circuitlab::testing::run_program({"/usr/bin/python3", source_dir() + "/tests/server/make_tiny_gpt2.py", dir});
  if (r.exit_code != 0) throw std::runtime_error("make_tiny_gpt2.py failed:\n" + r.output());
  return dir;
}

// A fresh directory, removed when the test program exits.
inline std::string fresh_temp_dir(const std::string& name) {
  static std::list<circuitlab::testing::TempDir> dirs;
  return dirs.emplace_back("lab-" + name).path();
}

// `circuitlab serve` as a child process; stopped (SIGTERM, then SIGKILL) on destruction.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args, const std::string& log_path) {
    const std::string bin = circuitlab::testing::circuitlab_bin();
    port_file_ = log_path + ".port";
    std::filesystem::remove(port_file_);
    std::vector<std::string> argv{bin, "serve", "--port", "0", "--port-file", port_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log_path.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(port_file_);
      if (in >> port_ && port_ > 0) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("circuitlab serve exited early; see " + log_path);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("circuitlab serve did not report a port within 60 s; see " + log_path);
  }
  ~ServeProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string port_file_;
};

}  // namespace circuitlab::labtest
