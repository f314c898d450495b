// Sparse autoencoders: the four architectures' encode/decode and SAELens's directory layout.
// See sae.h. The formulas are SAELens's (sae_lens/saes/*.py); the file layout is what
// SAELens's save_model writes (cfg.json, sae_weights.safetensors, sparsity.safetensors).
#include "models/sae.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "models/gemm.h"
#include "models/hook_names.h"
#include "models/safetensors.h"

namespace circuitlab::models {

namespace jf = json_fields;

const char* sae_architecture_name(SaeArchitecture a) {
  switch (a) {
    case SaeArchitecture::Standard: return "standard";
    case SaeArchitecture::TopK: return "topk";
    case SaeArchitecture::BatchTopK: return "batchtopk";
    case SaeArchitecture::JumpReLU: return "jumprelu";
  }
  return "?";
}

SaeArchitecture parse_sae_architecture(const std::string& name, const std::string& where) {
  if (name == "standard" || name == "relu") return SaeArchitecture::Standard;
  if (name == "topk") return SaeArchitecture::TopK;
  if (name == "batchtopk") return SaeArchitecture::BatchTopK;
  if (name == "jumprelu") return SaeArchitecture::JumpReLU;
  jf::field_error(where, "architecture", "must be one of standard, topk, batchtopk, jumprelu, got \"" + name + "\"");
}

void validate_sae_config(const SaeConfig& c, const std::string& where) {
  if (c.d_in < 1) jf::field_error(where, "d_in", "must be >= 1, got " + std::to_string(c.d_in));
  if (c.d_sae < 1) jf::field_error(where, "d_sae", "must be >= 1, got " + std::to_string(c.d_sae));
  const bool topk_family = c.architecture == SaeArchitecture::TopK || c.architecture == SaeArchitecture::BatchTopK;
  if (topk_family && (c.k < 1 || c.k >= c.d_sae))
    jf::field_error(where, "k", "must be in [1, d_sae) = [1, " + std::to_string(c.d_sae) + ") for a " +
                                    sae_architecture_name(c.architecture) + " SAE, got " + std::to_string(c.k));
  if (c.normalize_activations != "none")
    jf::field_error(where, "normalize_activations",
                    "must be \"none\" (a scaling factor folded into the weights), got \"" + c.normalize_activations + "\"");
  if (!c.hook_name.empty()) {
    HookId id;
    if (!parse_hook_name(c.hook_name, &id))
      jf::field_error(where, "metadata.hook_name", "is not a hook name (TransformerLens names), got \"" + c.hook_name + "\"");
    if (c.hook_head_index >= 0 && id.kind != "z" && id.kind != "q" && id.kind != "k" && id.kind != "v")
      jf::field_error(where, "metadata.hook_head_index", "is set but " + c.hook_name + " has no head dimension");
  }
}

SparseAutoencoder::SparseAutoencoder(SaeConfig c) : cfg(std::move(c)) {
  const auto f = torch::TensorOptions().dtype(torch::kFloat);
  W_enc = torch::zeros({cfg.d_in, cfg.d_sae}, f);
  W_dec = torch::zeros({cfg.d_sae, cfg.d_in}, f);
  b_enc = torch::zeros({cfg.d_sae}, f);
  b_dec = torch::zeros({cfg.d_in}, f);
  if (cfg.architecture == SaeArchitecture::JumpReLU || cfg.architecture == SaeArchitecture::BatchTopK)
    threshold = torch::zeros({cfg.d_sae}, f);
}

torch::Tensor SparseAutoencoder::pre_activations(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == cfg.d_in, "SAE input must be [N, d_in=", cfg.d_in, "], got ", x.sizes());
  torch::Tensor xc = x.to(torch::kFloat).contiguous();
  if (cfg.apply_b_dec_to_input) xc = xc - b_dec;
  return gemm::linear(xc, W_enc, b_enc);
}

torch::Tensor SparseAutoencoder::activate(const torch::Tensor& pre) const {
  switch (cfg.architecture) {
    case SaeArchitecture::Standard: return torch::relu(pre);
    case SaeArchitecture::TopK: {
      auto [vals, idx] = pre.topk(cfg.k, /*dim=*/-1);
      return torch::zeros_like(pre).scatter_(-1, idx, torch::relu(vals));
    }
    case SaeArchitecture::BatchTopK:
    case SaeArchitecture::JumpReLU: return torch::relu(pre) * (pre > threshold).to(pre.scalar_type());
  }
  return {};
}

torch::Tensor SparseAutoencoder::activate_batch_topk(const torch::Tensor& pre) const {
  torch::Tensor acts = torch::relu(pre).flatten();
  const int64_t n = std::min<int64_t>(cfg.k * pre.size(0), acts.numel());
  auto [vals, idx] = acts.topk(n, /*dim=*/-1, /*largest=*/true, /*sorted=*/false);
  return torch::zeros_like(acts).scatter_(0, idx, vals).view(pre.sizes());
}

torch::Tensor SparseAutoencoder::decode(const torch::Tensor& f) const {
  TORCH_CHECK(f.dim() == 2 && f.size(1) == cfg.d_sae, "SAE latents must be [N, d_sae=", cfg.d_sae, "], got ", f.sizes());
  return gemm::linear(f.to(torch::kFloat).contiguous(), W_dec, b_dec);
}

torch::Tensor sae_sparse_decode(const torch::Tensor& idx_in, const torch::Tensor& val_in, const torch::Tensor& W_dec_in,
                                const torch::Tensor& b_dec_in) {
  TORCH_CHECK(idx_in.dim() == 2 && idx_in.sizes() == val_in.sizes(), "sae_sparse_decode: idx and val must be [N, k]");
  const torch::Tensor idx = idx_in.to(torch::kLong).contiguous();
  const torch::Tensor val = val_in.to(torch::kFloat).contiguous();
  const torch::Tensor W = W_dec_in.contiguous();
  const int64_t N = idx.size(0), k = idx.size(1), d = W.size(1), S = W.size(0);
  torch::Tensor out = b_dec_in.to(torch::kFloat).contiguous().unsqueeze(0).repeat({N, 1});
  const int64_t* ip = idx.data_ptr<int64_t>();
  const float* vp = val.data_ptr<float>();
  const float* wp = W.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* o = op + b * d;
      for (int64_t i = 0; i < k; ++i) {
        const float a = vp[b * k + i];
        const int64_t j = ip[b * k + i];
        if (a == 0.0f) continue;
        TORCH_CHECK(j >= 0 && j < S, "sae_sparse_decode: latent id ", j, " outside [0, ", S, ")");
        const float* w = wp + j * d;
        for (int64_t c = 0; c < d; ++c) o[c] += a * w[c];
      }
    }
  });
  return out;
}

namespace {

bool is_head_hook(const std::string& hook) {
  const std::string kind = hook_kind(hook);
  return kind == "z" || kind == "q" || kind == "k" || kind == "v";
}

}  // namespace

torch::Tensor sae_input_from_hook(const torch::Tensor& act, const SaeConfig& cfg) {
  torch::Tensor a = act;
  if (is_head_hook(cfg.hook_name) && a.dim() >= 3) {
    if (cfg.hook_head_index >= 0) {
      if (cfg.hook_head_index >= a.size(-2))
        fail(cfg.hook_name + ": hook_head_index " + std::to_string(cfg.hook_head_index) + " but the model has " +
             std::to_string(a.size(-2)) + " heads");
      a = a.select(-2, cfg.hook_head_index);
    } else {
      a = a.flatten(-2, -1);  // [..., H, Dh] -> [..., H·Dh], heads concatenated
    }
  }
  if (a.size(-1) != cfg.d_in)
    fail("SAE d_in " + std::to_string(cfg.d_in) + " does not match the hook " + cfg.hook_name + " (size " +
         std::to_string(a.size(-1)) + ")");
  return a.reshape({-1, cfg.d_in}).to(torch::kFloat);
}

torch::Tensor sae_output_to_hook(const torch::Tensor& recon, const torch::Tensor& act, const SaeConfig& cfg) {
  if (is_head_hook(cfg.hook_name) && act.dim() >= 3) {
    if (cfg.hook_head_index >= 0) {
      torch::Tensor out = act.clone();
      auto head_shape = act.select(-2, cfg.hook_head_index).sizes();
      out.select(-2, cfg.hook_head_index).copy_(recon.reshape(head_shape));
      return out;
    }
  }
  return recon.reshape(act.sizes()).to(act.scalar_type());
}

// ---- files ----

namespace {

// A tensor of sae_weights.safetensors as float32 [shape]; Error naming file and tensor.
torch::Tensor read_tensor(const SafetensorsFile& f, const std::string& name, std::vector<int64_t> shape) {
  if (!f.contains(name)) fail(f.path() + ": tensor '" + name + "' is missing");
  const SafetensorInfo& info = f.info(name);
  if (info.shape != shape) {
    std::string got, want;
    for (auto s : info.shape) got += (got.empty() ? "" : ", ") + std::to_string(s);
    for (auto s : shape) want += (want.empty() ? "" : ", ") + std::to_string(s);
    fail(f.path() + ": tensor '" + name + "' has shape [" + got + "], expected [" + want + "] from cfg.json");
  }
  const std::string& dt = info.dtype;
  if (dt != "F32" && dt != "F16" && dt != "BF16" && dt != "F64")
    fail(f.path() + ": tensor '" + name + "' has dtype " + dt + ", expected a float type (F32, F16, BF16, F64)");
  torch::Tensor t = f.view(name).to(torch::kFloat).clone();
  if (!torch::isfinite(t).all().item<bool>()) fail(f.path() + ": tensor '" + name + "' holds non-finite values");
  return t;
}

}  // namespace

SparseAutoencoder load_sae(const std::string& dir) {
  const std::string cfg_path = dir + "/cfg.json";
  if (!file_exists(cfg_path)) fail(dir + ": not an SAE directory (no cfg.json)");
  const jf::json j = jf::parse_file(cfg_path);
  jf::Object o(j, cfg_path);
  SaeConfig c;
  const std::string arch = o.get_or<std::string>("architecture", "standard");
  // SAELens < 6 wrote TopK as architecture "standard" + activation_fn_str "topk".
  const std::string act_fn = o.get_or<std::string>("activation_fn_str", "");
  c.architecture = arch == "standard" && act_fn == "topk" ? SaeArchitecture::TopK : parse_sae_architecture(arch, cfg_path);
  c.d_in = o.int_in("d_in", 1, int64_t(1) << 31);
  c.d_sae = o.int_in("d_sae", 1, int64_t(1) << 31);
  const std::string dtype = o.get_or<std::string>("dtype", "float32");
  if (dtype != "float32" && dtype != "torch.float32" && dtype != "float16" && dtype != "torch.float16" &&
      dtype != "bfloat16" && dtype != "torch.bfloat16" && dtype != "float64" && dtype != "torch.float64")
    jf::field_error(cfg_path, "dtype", "must be a float dtype (float32, float16, bfloat16), got \"" + dtype + "\"");
  if (c.architecture == SaeArchitecture::TopK || c.architecture == SaeArchitecture::BatchTopK) {
    if (o.has_value("k")) {
      c.k = o.req<int64_t>("k");
    } else if (const jf::json* kw = o.opt_object("activation_fn_kwargs")) {
      jf::Object kwo(*kw, cfg_path + " activation_fn_kwargs");
      c.k = kwo.req<int64_t>("k");
    } else {
      jf::field_error(cfg_path, "k", "is missing (expected the number of active latents of a TopK SAE)");
    }
  }
  o.opt("apply_b_dec_to_input", c.apply_b_dec_to_input);
  o.opt("normalize_activations", c.normalize_activations);
  // Metadata: SAELens ≥ 6 nests it (`metadata`, later `meta`); older versions put the same keys
  // at the top.
  const jf::json* meta = o.opt_object("metadata");
  const jf::json* meta2 = o.opt_object("meta");
  if (!meta) meta = meta2;
  jf::Object m(meta ? *meta : j, meta ? cfg_path + " metadata" : cfg_path);
  m.opt("model_name", c.model_name);
  m.opt("hook_name", c.hook_name);
  m.opt("hook_head_index", c.hook_head_index);
  m.opt("context_size", c.context_size);
  m.opt("prepend_bos", c.prepend_bos);
  validate_sae_config(c, cfg_path);

  SparseAutoencoder sae(c);
  const std::string wpath = dir + "/sae_weights.safetensors";
  if (!file_exists(wpath)) fail(dir + ": sae_weights.safetensors is missing");
  const SafetensorsFile f = SafetensorsFile::open(wpath);
  sae.W_enc = read_tensor(f, "W_enc", {c.d_in, c.d_sae});
  sae.W_dec = read_tensor(f, "W_dec", {c.d_sae, c.d_in});
  sae.b_enc = read_tensor(f, "b_enc", {c.d_sae});
  sae.b_dec = read_tensor(f, "b_dec", {c.d_in});
  if (c.architecture == SaeArchitecture::JumpReLU || c.architecture == SaeArchitecture::BatchTopK) {
    if (f.contains("threshold") || !f.contains("log_threshold"))
      sae.threshold = read_tensor(f, "threshold", {c.d_sae});
    else
      sae.threshold = read_tensor(f, "log_threshold", {c.d_sae}).exp();
  }
  const std::string spath = dir + "/sparsity.safetensors";
  if (file_exists(spath)) {
    const SafetensorsFile sf = SafetensorsFile::open(spath);
    if (!sf.contains("sparsity")) fail(spath + ": tensor 'sparsity' is missing");
    const SafetensorInfo& info = sf.info("sparsity");
    if (info.shape != std::vector<int64_t>{c.d_sae})
      fail(spath + ": tensor 'sparsity' must have shape [" + std::to_string(c.d_sae) + "]");
    sae.log10_density = sf.view("sparsity").to(torch::kFloat).clone();
  }
  return sae;
}

void save_sae(const SparseAutoencoder& sae, const std::string& dir) {
  const SaeConfig& c = sae.cfg;
  validate_sae_config(c, dir + "/cfg.json");
  make_dirs(dir);
  const bool jump = c.architecture == SaeArchitecture::JumpReLU || c.architecture == SaeArchitecture::BatchTopK;
  std::map<std::string, torch::Tensor> w{{"W_enc", sae.W_enc.contiguous()},
                                         {"W_dec", sae.W_dec.contiguous()},
                                         {"b_enc", sae.b_enc.contiguous()},
                                         {"b_dec", sae.b_dec.contiguous()}};
  if (jump) {
    TORCH_CHECK(sae.threshold.defined() && sae.threshold.numel() == c.d_sae, "save_sae: threshold must be [d_sae]");
    w["threshold"] = sae.threshold.contiguous();
  }
  save_safetensors(dir + "/sae_weights.safetensors", w);
  if (sae.log10_density.defined())
    save_safetensors(dir + "/sparsity.safetensors", {{"sparsity", sae.log10_density.to(torch::kFloat).contiguous()}});

  // Only SAEMetadata's own fields (newer SAELens builds it as a strict dataclass). sae_lens_version
  // names the cfg.json layout we write: without it SAELens reads the file as a pre-6.0 config.
  HookId id;
  const bool parsed = parse_hook_name(c.hook_name, &id);
  jf::json meta = {{"model_name", c.model_name},
                   {"model_class_name", "HookedTransformer"},
                   {"hook_name", c.hook_name},
                   {"hook_layer", parsed && id.layer >= 0 ? jf::json(id.layer) : jf::json(nullptr)},
                   {"hook_head_index", c.hook_head_index >= 0 ? jf::json(c.hook_head_index) : jf::json(nullptr)},
                   {"context_size", c.context_size},
                   {"prepend_bos", c.prepend_bos},
                   {"sae_lens_version", "6.0.0"},
                   {"sae_lens_training_version", nullptr}};
  jf::json j = {{"architecture", jump ? "jumprelu" : sae_architecture_name(c.architecture)},
                {"d_in", c.d_in},
                {"d_sae", c.d_sae},
                {"dtype", "float32"},
                {"device", "cpu"},
                {"apply_b_dec_to_input", c.apply_b_dec_to_input},
                {"normalize_activations", "none"},
                {"reshape_activations", hook_kind(c.hook_name) == "z" && c.hook_head_index < 0 ? "hook_z" : "none"},
                {"metadata", meta},
                {"meta", meta}};  // SAELens 6.x reads `metadata`; later versions renamed the field `meta`
  if (c.architecture == SaeArchitecture::TopK) {
    j["k"] = c.k;
    j["rescale_acts_by_decoder_norm"] = false;
  }
  write_file_atomic(dir + "/cfg.json", j.dump(2) + "\n");
}

}  // namespace circuitlab::models
