// Model directories: config.json + model.safetensors (+ vocab_map.json). Toys are stored in
// TransformerLens names/shapes; GPT-2 is read from the Hugging Face layout and converted to
// the same names (as TransformerLens's convert_gpt2_weights). Weights are copied out of the
// memory map tensor by tensor, releasing the mapped pages as they go, so loading peaks near
// the model size in RSS. Not the model (hooked_transformer.cpp).
#include "models/model_dir.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "models/safetensors.h"

namespace circuitlab::models {

namespace {

using torch::Tensor;

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// One model parameter and where its values come from in the file.
struct Source {
  std::string param;      // TL name
  std::string file_name;  // tensor name in model.safetensors
  Tensor src;             // view of the file tensor, reshaped/permuted to the TL shape
};

// Copies every source into its parameter (dtype converted), releasing mapped pages as it goes.
void assign(HookedTransformer& model, const std::vector<Source>& sources, const SafetensorsFile& f) {
  auto params = model->named_parameters(/*recurse=*/true);
  std::map<std::string, const Source*> by_param;
  for (const auto& s : sources) by_param[s.param] = &s;
  for (const auto& kv : params) {
    auto it = by_param.find(kv.key());
    if (it == by_param.end()) fail(f.path() + ": missing tensor '" + kv.key() + "'");
    if (it->second->src.sizes() != kv.value().sizes())
      fail(f.path() + ": tensor '" + it->second->file_name + "' has shape " + shape_str(it->second->src.sizes()) +
           " for " + kv.key() + ", expected " + shape_str(kv.value().sizes()) + " from config.json");
  }
  torch::NoGradGuard no_grad;
  constexpr int64_t kChunkBytes = 16 << 20;
  for (auto& kv : params) {
    const Source& s = *by_param.at(kv.key());
    Tensor dst = kv.value();
    const int64_t row_bytes = s.src.dim() > 0 && s.src.size(0) > 0 ? s.src.numel() / s.src.size(0) * s.src.element_size() : 0;
    if (s.src.is_contiguous() && s.src.dim() > 0 && row_bytes > 0 && s.src.numel() * s.src.element_size() > kChunkBytes) {
      const int64_t rows = std::max<int64_t>(1, kChunkBytes / row_bytes);
      for (int64_t r = 0; r < s.src.size(0); r += rows) {
        int64_t r2 = std::min(s.src.size(0), r + rows);
        dst.slice(0, r, r2).copy_(s.src.slice(0, r, r2));
        f.release(s.file_name, static_cast<uint64_t>(r * row_bytes), static_cast<uint64_t>(r2 * row_bytes));
      }
    } else {
      dst.copy_(s.src);
      f.release(s.file_name);
    }
  }
}

std::vector<Source> toy_sources(const HookedTransformer& model, const SafetensorsFile& f) {
  std::vector<Source> r;
  auto params = model->named_parameters(/*recurse=*/true);
  for (const auto& name : f.names()) {
    if (!params.contains(name))
      fail(f.path() + ": unexpected tensor '" + name + "' (config.json says this model has no such parameter)");
    r.push_back({name, name, f.view(name)});
  }
  return r;
}

// Hugging Face GPT-2 names -> TL names (TransformerLens convert_gpt2_weights).
std::vector<Source> gpt2_sources(const ModelConfig& c, const SafetensorsFile& f) {
  std::string prefix;
  if (f.contains("transformer.wte.weight")) prefix = "transformer.";
  else if (!f.contains("wte.weight")) fail(f.path() + ": missing tensor 'wte.weight' (or 'transformer.wte.weight')");
  const int64_t D = c.d_model, H = c.n_heads, Dh = c.d_head;
  std::vector<Source> r;
  auto get = [&](const std::string& hf, std::vector<int64_t> shape) {
    std::string name = prefix + hf;
    if (!f.contains(name)) fail(f.path() + ": missing tensor '" + name + "'");
    Tensor t = f.view(name);
    if (t.sizes() != at::IntArrayRef(shape))
      fail(f.path() + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) + ", expected " + shape_str(shape) +
           " from config.json");
    return std::make_pair(name, t);
  };
  auto add = [&](const std::string& tl, const std::pair<std::string, Tensor>& src, Tensor view) {
    r.push_back({tl, src.first, view.defined() ? view : src.second});
  };
  auto wte = get("wte.weight", {c.d_vocab, D});
  add("embed.W_E", wte, {});
  add("pos_embed.W_pos", get("wpe.weight", {c.n_ctx, D}), {});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    const std::string b = "blocks." + std::to_string(l) + ".";
    add(b + "ln1.w", get(h + "ln_1.weight", {D}), {});
    add(b + "ln1.b", get(h + "ln_1.bias", {D}), {});
    auto w = get(h + "attn.c_attn.weight", {D, 3 * D});  // Conv1D [in, out], out = (q|k|v, head, d_head)
    auto wv = w.second.view({D, 3, H, Dh});
    add(b + "attn.W_Q", w, wv.select(1, 0).permute({1, 0, 2}));  // [H, D, Dh]
    add(b + "attn.W_K", w, wv.select(1, 1).permute({1, 0, 2}));
    add(b + "attn.W_V", w, wv.select(1, 2).permute({1, 0, 2}));
    auto bias = get(h + "attn.c_attn.bias", {3 * D});
    auto bv = bias.second.view({3, H, Dh});
    add(b + "attn.b_Q", bias, bv.select(0, 0));
    add(b + "attn.b_K", bias, bv.select(0, 1));
    add(b + "attn.b_V", bias, bv.select(0, 2));
    auto wo = get(h + "attn.c_proj.weight", {D, D});  // rows = (head, d_head)
    add(b + "attn.W_O", wo, wo.second.view({H, Dh, D}));
    add(b + "attn.b_O", get(h + "attn.c_proj.bias", {D}), {});
    add(b + "ln2.w", get(h + "ln_2.weight", {D}), {});
    add(b + "ln2.b", get(h + "ln_2.bias", {D}), {});
    add(b + "mlp.W_in", get(h + "mlp.c_fc.weight", {D, c.mlp_dim()}), {});
    add(b + "mlp.b_in", get(h + "mlp.c_fc.bias", {c.mlp_dim()}), {});
    add(b + "mlp.W_out", get(h + "mlp.c_proj.weight", {c.mlp_dim(), D}), {});
    add(b + "mlp.b_out", get(h + "mlp.c_proj.bias", {D}), {});
  }
  add("ln_final.w", get("ln_f.weight", {D}), {});
  add("ln_final.b", get("ln_f.bias", {D}), {});
  // h.{l}.attn.bias / masked_bias are causal-mask buffers; lm_head.weight is tied to wte.
  return r;
}

}  // namespace

namespace {
// Allocating the model before its tensors are checked would let a lying config.json ask for
// any amount of memory. The big matrices the config implies must fit in the file (at the
// smallest float dtype, 2 bytes) before anything is allocated.
void check_size_against_file(const ModelConfig& cfg, const SafetensorsFile& f, const std::string& cfg_path) {
  const long double D = cfg.d_model, H = cfg.n_heads, Dh = cfg.d_head;
  long double params = static_cast<long double>(cfg.d_vocab) * D + static_cast<long double>(cfg.n_ctx) * D;
  long double per_layer = 4.0L * H * D * Dh;
  if (!cfg.attn_only) per_layer += 2.0L * D * cfg.mlp_dim();
  params += static_cast<long double>(cfg.n_layers) * per_layer;
  if (!cfg.tied_unembed) params += D * cfg.vocab_out();
  const long double need = 2.0L * params;
  if (need > static_cast<long double>(f.file_size()))
    fail(cfg_path + ": n_layers/d_model/n_heads/d_head/n_ctx/d_vocab imply " + std::to_string(static_cast<double>(params)) +
         " parameters, more than " + f.path() + " holds (" + std::to_string(f.file_size()) + " bytes)");
}
}  // namespace

LoadedModel load_model_dir(const std::string& dir) {
  if (!is_directory(dir)) fail(dir + ": not a model directory (expected config.json + model.safetensors)");
  const std::string cfg_path = dir + "/config.json";
  const std::string st_path = dir + "/model.safetensors";
  if (!file_exists(cfg_path)) fail(cfg_path + ": missing (a model directory holds config.json + model.safetensors)");
  if (!file_exists(st_path)) fail(st_path + ": missing (a model directory holds config.json + model.safetensors)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    fail(cfg_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  ModelConfig cfg = config_from_json(j, cfg_path);
  SafetensorsFile f = SafetensorsFile::open(st_path);
  check_size_against_file(cfg, f, cfg_path);
  LoadedModel out;
  out.dir = dir;
  out.model = HookedTransformer(cfg, /*init_weights=*/false);
  std::vector<Source> sources = cfg.gpt2() ? gpt2_sources(cfg, f) : toy_sources(out.model, f);
  assign(out.model, sources, f);
  out.model->eval();
  const std::string vm_path = dir + "/vocab_map.json";
  if (file_exists(vm_path)) {
    out.vocab_map = data::VocabMap::load(vm_path);
    if (out.vocab_map->size() != cfg.d_vocab)
      fail(vm_path + ": maps " + std::to_string(out.vocab_map->size()) + " compact ids but config.json has d_vocab " +
           std::to_string(cfg.d_vocab));
  }
  return out;
}

void save_model_dir(const HookedTransformer& model, const std::string& dir, const data::VocabMap* vocab_map) {
  ModelConfig cfg = model->cfg();
  std::map<std::string, torch::Tensor> sd;
  for (const auto& kv : model->named_parameters(/*recurse=*/true)) sd[kv.key()] = kv.value().detach();
  if (cfg.tied_unembed) {  // TL layout has its own W_U (a copy of W_Eᵀ) and b_U (zeros)
    sd["unembed.W_U"] = model->W_E().detach().t().contiguous();
    sd["unembed.b_U"] = torch::zeros({cfg.vocab_out()}, model->W_E().options().requires_grad(false));
    cfg.tied_unembed = false;
    cfg.use_bias = true;
  }
  cfg.family = ModelFamily::Toy;
  if (vocab_map && vocab_map->size() != cfg.d_vocab)
    fail(dir + "/vocab_map.json: maps " + std::to_string(vocab_map->size()) + " compact ids but the model has d_vocab " +
         std::to_string(cfg.d_vocab));
  make_dirs(dir);
  save_safetensors(dir + "/model.safetensors", sd, {{"circuitlab", "model-v1"}});
  write_file_atomic(dir + "/config.json", to_json(cfg).dump(2) + "\n");
  if (vocab_map) vocab_map->save(dir + "/vocab_map.json");
}

}  // namespace circuitlab::models
