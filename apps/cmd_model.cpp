// Subcommands of the model layer: forward, inspect, export, fetch-gpt2 (see apps/commands.h).
// Thin: parsing, printing and files; the work is in models/.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/cli_io.h"
#include "apps/commands.h"
#include "apps/fetch_gpt2.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/token_namer.h"
#include "data/tokenizer.h"
#include "models/model_dir.h"

namespace circuitlab::apps {

namespace {

std::string quote(const std::string& s) {
  std::string r = "'";
  for (char ch : s) {
    if (ch == '\n') r += "\\n";
    else if (ch == '\t') r += "\\t";
    else r += ch;
  }
  return r + "'";
}

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

torch::Device parse_device(const std::string& d) {
  try {
    return torch::Device(d);
  } catch (const std::exception&) {
    fail("--device '" + d + "': expected cpu, cuda or cuda:N");
  }
}

}  // namespace

void register_model_commands(CLI::App& app) {
  // ---- forward ----
  {
    auto* cmd = app.add_subcommand("forward", "Run a model on tokens or text: logits .npy and the top-5 next tokens");
    struct Opts {
      std::string model, tokens, text, npy, device = "cpu";
      bool prepend_bos = true;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "Model directory (config.json + model.safetensors)")->required();
    auto* tok_opt = cmd->add_option("--tokens", o->tokens, "GPT-2 token ids, e.g. \"464 3290 318\"");
    auto* text_opt = cmd->add_option("--text", o->text, "Text to tokenize with the model's tokenizer");
    tok_opt->excludes(text_opt);
    cmd->add_option("--npy", o->npy, "Write the logits [T, d_vocab_out] as float32 .npy here");
    cmd->add_flag("--prepend-bos,!--no-prepend-bos", o->prepend_bos,
                  "Put <|endoftext|> (50256) in front (default on, as TransformerLens)");
    cmd->add_option("--device", o->device, "cpu, cuda, cuda:N");
    cmd->add_option("--threads", o->threads, "Intra-op threads (0: default)");
    cmd->callback([o]() {
      set_threads(o->threads);
      if (o->tokens.empty() && o->text.empty()) fail("forward: give --tokens \"ID ID ...\" or --text \"...\"");
      models::LoadedModel lm = models::load_model_dir(o->model);
      data::Tokenizer tok = models::load_model_tokenizer(o->model);
      std::vector<int64_t> gpt2_ids;
      if (!o->text.empty()) {
        for (int32_t id : tok.encode(o->text)) gpt2_ids.push_back(id);
      } else {
        gpt2_ids = parse_token_ids(o->tokens);
      }
      if (o->prepend_bos) {
        if (!lm.vocab_map && lm.model->cfg().d_vocab <= models::kGpt2Bos)
          fail("forward: --prepend-bos puts <|endoftext|> 50256 first, but " + o->model + " has d_vocab " +
               std::to_string(lm.model->cfg().d_vocab) + " and no vocab_map.json (use --no-prepend-bos)");
        gpt2_ids.insert(gpt2_ids.begin(), models::kGpt2Bos);
      }
      if (gpt2_ids.empty()) fail("forward: no tokens to run (empty --text/--tokens and --no-prepend-bos)");
      // Model ids: compact through vocab_map.json when the model was trained compact.
      std::vector<int64_t> ids;
      for (int64_t g : gpt2_ids) {
        if (lm.vocab_map) {
          if (g < 0 || g > 0x7fffffff) fail("--tokens: id " + std::to_string(g) + " is not a GPT-2 token id");
          ids.push_back(lm.vocab_map->to_compact(static_cast<int32_t>(g)));
        } else {
          ids.push_back(g);
        }
      }
      auto device = parse_device(o->device);
      lm.model->to(device);
      torch::NoGradGuard no_grad;
      torch::Tensor tokens = torch::tensor(ids, torch::kLong).unsqueeze(0);  // [1, T]
      torch::Tensor logits = lm.model->forward(tokens).squeeze(0).to(torch::kCPU);  // [T, V_out]
      if (!o->npy.empty()) write_npy_f32(o->npy, logits);
      torch::Tensor last = logits[-1];
      torch::Tensor probs = torch::softmax(last.to(torch::kDouble), 0);
      auto top = probs.topk(std::min<int64_t>(5, probs.size(0)));
      std::printf("tokens (%zu): ", ids.size());
      for (size_t i = 0; i < gpt2_ids.size(); ++i) std::printf("%s%lld", i ? " " : "", static_cast<long long>(gpt2_ids[i]));
      std::printf("\nlogits [%lld, %lld]%s%s\ntop-5 next tokens after position %lld:\n",
                  static_cast<long long>(logits.size(0)), static_cast<long long>(logits.size(1)),
                  o->npy.empty() ? "" : " -> ", o->npy.c_str(), static_cast<long long>(logits.size(0) - 1));
      const data::TokenNamer namer(&tok, lm.vocab_map ? &*lm.vocab_map : nullptr);
      for (int64_t i = 0; i < std::get<1>(top).size(0); ++i) {
        int64_t id = std::get<1>(top)[i].item<int64_t>();
        const int64_t gid = namer.gpt2_id(id);
        const std::string s = gid < 0 ? data::kOtherTokenStr : quote(namer.str(id));
        std::printf("  %d. %-20s id %-6lld p=%.4f logit=%.4f\n", static_cast<int>(i + 1), s.c_str(),
                    static_cast<long long>(gid), std::get<0>(top)[i].item<double>(), last[id].item<double>());
      }
    });
  }
  // ---- inspect ----
  {
    auto* cmd = app.add_subcommand("inspect", "Print a model dir's config, parameter count and tensors");
    struct Opts {
      std::string model;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "Model directory")->required();
    cmd->add_option("--threads", o->threads, "Intra-op threads (0: default)");
    cmd->callback([o]() {
      set_threads(o->threads);
      models::LoadedModel lm = models::load_model_dir(o->model);
      const auto& c = lm.model->cfg();
      std::printf("model dir: %s\nfamily: %s%s\nconfig (TransformerLens keys):\n%s\n", o->model.c_str(), models::to_string(c.family),
                  c.tied_unembed ? " (unembedding tied to W_E)" : "", models::to_json(c).dump(2).c_str());
      if (lm.vocab_map) std::printf("vocab_map.json: %d compact ids (last = other)\n", lm.vocab_map->size());
      std::printf("parameters: %lld\nhook points: %zu\ntensors (TransformerLens names):\n",
                  static_cast<long long>(lm.model->num_parameters()), lm.model->hook_names().size());
      for (const auto& kv : lm.model->named_parameters(true))
        std::printf("  %-28s %-16s %s\n", kv.key().c_str(), shape_str(kv.value().sizes()).c_str(),
                    c10::toString(kv.value().scalar_type()));
    });
  }
  // ---- export ----
  {
    auto* cmd = app.add_subcommand("export", "Write a model (toy or GPT-2) as a TransformerLens-layout model dir");
    struct Opts {
      std::string model, out;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "Model directory to read")->required();
    cmd->add_option("--out", o->out, "Directory to write (config.json + model.safetensors)")->required();
    cmd->add_option("--threads", o->threads, "Intra-op threads (0: default)");
    cmd->callback([o]() {
      set_threads(o->threads);
      models::LoadedModel lm = models::load_model_dir(o->model);
      models::save_model_dir(lm.model, o->out, lm.vocab_map ? &*lm.vocab_map : nullptr);
      std::printf("wrote %s (TransformerLens names, %lld parameters)\n", o->out.c_str(),
                  static_cast<long long>(lm.model->num_parameters()));
    });
  }
  // ---- fetch-gpt2 ----
  {
    auto* cmd = app.add_subcommand("fetch-gpt2", "Download GPT-2 (config, safetensors, vocab.json, merges.txt) from the HF hub layout");
    struct Opts {
      std::string name = "gpt2";
      FetchOptions f;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("name", o->name, "gpt2 | gpt2-medium | gpt2-large | gpt2-xl")->capture_default_str();
    cmd->add_option("--base-url", o->f.base_url, "Hub base URL; files come from <base>/<name>/resolve/main/<file>")
        ->capture_default_str();
    cmd->add_option("--out", o->f.out_dir, "Output directory (default models/<name>)");
    cmd->add_option("--timeout", o->f.timeout_s, "Connect/read timeout in seconds")->capture_default_str();
    cmd->add_option("--threads", o->threads, "Unused (kept for a uniform command line)");
    cmd->callback([o]() {
      std::string dir = fetch_gpt2(o->name, o->f);
      std::printf("%s: complete (config.json, model.safetensors, vocab.json, merges.txt)\n", dir.c_str());
    });
  }
}

}  // namespace circuitlab::apps
