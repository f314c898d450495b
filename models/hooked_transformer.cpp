// HookedTransformer: embed -> [attention (+ MLP) blocks] -> ln_final -> unembed, with a named
// hook point on every intermediate (TransformerLens names and shapes). Row vectors: x · W.
// The fast path (no hooks, no cache) pays one branch per hook point; Q/K/V of a layer come
// from one GEMM against a fused [D, 3·H·Dh] weight that is rebuilt only when weights change.
// Not a loader or a tokenizer (model_dir.cpp, data/tokenizer.h).
#include "models/hooked_transformer.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "models/gemm.h"
#include "models/hook_names.h"

namespace circuitlab::models {

namespace {

using torch::Tensor;

// Parameter holders named as TransformerLens modules, so named_parameters() yields TL names.
struct LNModule : torch::nn::Module {
  Tensor w, b;  // [D]
  explicit LNModule(int64_t D) {
    w = register_parameter("w", torch::ones({D}));
    b = register_parameter("b", torch::zeros({D}));
  }
};

struct EmbedModule : torch::nn::Module {
  Tensor W_E;  // [V, D]
  EmbedModule(int64_t V, int64_t D) { W_E = register_parameter("W_E", torch::empty({V, D})); }
};

struct PosEmbedModule : torch::nn::Module {
  Tensor W_pos;  // [n_ctx, D]
  PosEmbedModule(int64_t n_ctx, int64_t D) { W_pos = register_parameter("W_pos", torch::empty({n_ctx, D})); }
};

struct AttnModule : torch::nn::Module {
  Tensor W_Q, W_K, W_V;  // [H, D, Dh]
  Tensor W_O;            // [H, Dh, D]
  Tensor b_Q, b_K, b_V;  // [H, Dh]   (undefined without biases)
  Tensor b_O;            // [D]
  AttnModule(int64_t H, int64_t D, int64_t Dh, bool bias) {
    W_Q = register_parameter("W_Q", torch::empty({H, D, Dh}));
    W_K = register_parameter("W_K", torch::empty({H, D, Dh}));
    W_V = register_parameter("W_V", torch::empty({H, D, Dh}));
    W_O = register_parameter("W_O", torch::empty({H, Dh, D}));
    if (bias) {
      b_Q = register_parameter("b_Q", torch::zeros({H, Dh}));
      b_K = register_parameter("b_K", torch::zeros({H, Dh}));
      b_V = register_parameter("b_V", torch::zeros({H, Dh}));
      b_O = register_parameter("b_O", torch::zeros({D}));
    }
  }
};

struct MlpModule : torch::nn::Module {
  Tensor W_in;   // [D, d_mlp]
  Tensor b_in;   // [d_mlp]
  Tensor W_out;  // [d_mlp, D]
  Tensor b_out;  // [D]
  MlpModule(int64_t D, int64_t M, bool bias) {
    W_in = register_parameter("W_in", torch::empty({D, M}));
    if (bias) b_in = register_parameter("b_in", torch::zeros({M}));
    W_out = register_parameter("W_out", torch::empty({M, D}));
    if (bias) b_out = register_parameter("b_out", torch::zeros({D}));
  }
};

struct BlockModule : torch::nn::Module {
  std::shared_ptr<LNModule> ln1, ln2;
  std::shared_ptr<AttnModule> attn;
  std::shared_ptr<MlpModule> mlp;
  BlockModule(const ModelConfig& c) {
    if (c.has_ln()) ln1 = register_module("ln1", std::make_shared<LNModule>(c.d_model));
    attn = register_module("attn", std::make_shared<AttnModule>(c.n_heads, c.d_model, c.d_head, c.use_bias));
    if (!c.attn_only) {
      if (c.has_ln()) ln2 = register_module("ln2", std::make_shared<LNModule>(c.d_model));
      mlp = register_module("mlp", std::make_shared<MlpModule>(c.d_model, c.mlp_dim(), c.use_bias));
    }
  }
};

struct UnembedModule : torch::nn::Module {
  Tensor W_U;  // [D, V_out] (absent when tied to W_E)
  Tensor b_U;  // [V_out]
  UnembedModule(int64_t D, int64_t V_out, bool tied, bool bias) {
    if (!tied) W_U = register_parameter("W_U", torch::empty({D, V_out}));
    if (bias && !tied) b_U = register_parameter("b_U", torch::zeros({V_out}));
  }
};

// Hook point ids: the global points, then kLayerPoints per layer (hook_names.h's enums).
enum GlobalPoint {
  kEmbed = static_cast<int>(GlobalHook::Embed), kPosEmbed = static_cast<int>(GlobalHook::PosEmbed),
  kLnfScale = static_cast<int>(GlobalHook::LnFinalScale), kLnfNorm = static_cast<int>(GlobalHook::LnFinalNormalized),
  kNumGlobal = static_cast<int>(GlobalHook::Count)
};
enum LayerPoint {
  kResidPre = 0, kLn1Scale, kLn1Norm, kQ, kK, kV, kScores, kPattern, kZ, kResult, kAttnOut,
  kResidMid, kLn2Scale, kLn2Norm, kMlpPre, kMlpPost, kMlpOut, kResidPost, kLayerPoints
};
static_assert(kLayerPoints == static_cast<int>(LayerHook::Count) && kResidPost == static_cast<int>(LayerHook::ResidPost) &&
                  kPattern == static_cast<int>(LayerHook::Pattern) && kMlpPre == static_cast<int>(LayerHook::MlpPre),
              "LayerPoint must follow models::LayerHook");

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

struct HookedTransformerImpl::Impl {
  std::shared_ptr<EmbedModule> embed;
  std::shared_ptr<PosEmbedModule> pos_embed;
  std::vector<std::shared_ptr<BlockModule>> blocks;
  std::shared_ptr<LNModule> ln_final;
  std::shared_ptr<UnembedModule> unembed;

  // Hook registry, indexed by point id.
  std::vector<std::string> names;
  std::vector<char> exists;
  std::vector<int> order;  // forward order of existing points
  std::unordered_map<std::string, int> index;
  std::vector<std::vector<std::pair<int, HookFn>>> hooks;
  std::unordered_map<int, int> handle_point;
  int next_handle = 1;
  ActivationCache* cache = nullptr;
  std::vector<char> cached;
  bool keep_graph = false;
  std::vector<char> active;
  bool any_active = false;

  // Fused Q|K|V weights per layer for inference; rebuilt when a weight's version changes.
  struct Fused {
    Tensor w;  // [D, 3·H·Dh], columns (q|k|v, head, d_head)
    Tensor b;  // [3·H·Dh] or undefined
    std::vector<int64_t> versions;
    std::vector<const void*> ptrs;
  };
  std::vector<Fused> fused;
  Tensor causal;  // [n_ctx, n_ctx] bool, true above the diagonal (future keys)
  // Guards `fused` and `causal` so concurrent hook-free forwards (a server's request threads)
  // can share one model. Hook/cache registration is not thread-safe: one owner sets those.
  std::mutex derived_mu;

  int layer_point(int l, int p) const { return kNumGlobal + l * kLayerPoints + p; }

  void refresh_active() {
    any_active = false;
    for (size_t p = 0; p < names.size(); ++p) {
      active[p] = exists[p] && (!hooks[p].empty() || (cache != nullptr && cached[p]));
      any_active = any_active || active[p];
    }
  }

  void run_point(int pid, Tensor& x) {
    for (auto& [handle, fn] : hooks[pid]) {
      std::optional<Tensor> r = fn(x, names[pid]);
      if (r.has_value()) {
        TORCH_CHECK(r->sizes() == x.sizes(), "hook on '", names[pid], "' returned shape ", r->sizes(),
                    ", expected the activation's shape ", x.sizes());
        x = *r;
      }
    }
    if (cache != nullptr && cached[pid]) (*cache)[names[pid]] = keep_graph ? x : x.detach();
  }

  // Calls the hooks/cache of point pid, if any; the cheap check is all the fast path pays.
  inline void hp(int pid, Tensor& x) {
    if (any_active && active[pid]) run_point(pid, x);
  }

  // The forward pass, one step each (llm.c's *_forward): forward() calls them in order.
  // tokens [B, T] -> resid [B, T, D]; *pos [B, T, D] is the (hooked) positional embedding.
  Tensor embed_forward(const ModelConfig& c, const Tensor& tokens, Tensor* pos);
  // Scores to drop: [T, T] future keys, or [B, 1, T, T] with the padding keys of attention_mask.
  Tensor drop_mask(const ModelConfig& c, const ForwardOptions& opts, int64_t B, int64_t T, const torch::Device& device);
  // LayerNorm with its hook_scale / hook_normalized points; identity without LayerNorm.
  Tensor layer_norm_forward(const ModelConfig& c, const std::shared_ptr<LNModule>& ln, const Tensor& x, int pid_scale,
                            int pid_norm);
  // Fused Q|K|V weight [D, 3·H·Dh] (+ bias [3·H·Dh]) of layer l; cached unless autograd needs it fresh.
  std::pair<Tensor, Tensor> fused_qkv(const ModelConfig& c, int l, bool need_graph);
  // x [B, T, D] (normalised) -> attn_out [B, T, D]; q/k/v, scores, pattern, z, result hooked.
  Tensor attention_forward(const ModelConfig& c, int l, const Tensor& x, const Tensor& pos, const Tensor& drop,
                           const ForwardOptions& opts, bool need_graph);
  // mid [B, T, D] -> mlp_out [B, T, D] (ln2, pre, post hooked).
  Tensor mlp_forward(const ModelConfig& c, int l, const Tensor& mid);
  // resid [B, T, D] -> logits [B, T, V_out] through ln_final and W_U (or W_Eᵀ when tied).
  Tensor unembed_forward(const ModelConfig& c, const Tensor& resid);
};

HookedTransformerImpl::HookedTransformerImpl(ModelConfig cfg, bool init_weights)
    : cfg_(std::move(cfg)), impl_(std::make_shared<Impl>()) {
  cfg_.validate("model config");
  auto& I = *impl_;
  const ModelConfig& c = cfg_;
  I.embed = register_module("embed", std::make_shared<EmbedModule>(c.d_vocab, c.d_model));
  I.pos_embed = register_module("pos_embed", std::make_shared<PosEmbedModule>(c.n_ctx, c.d_model));
  if (c.n_layers > 0) {
    auto list = register_module("blocks", torch::nn::ModuleList());
    for (int l = 0; l < c.n_layers; ++l) {
      I.blocks.push_back(std::make_shared<BlockModule>(c));
      list->push_back(I.blocks.back());
    }
  }
  if (c.has_ln()) I.ln_final = register_module("ln_final", std::make_shared<LNModule>(c.d_model));
  I.unembed = register_module("unembed", std::make_shared<UnembedModule>(c.d_model, c.vocab_out(), c.tied_unembed, c.use_bias));
  I.fused.resize(c.n_layers);

  // Hook registry.
  const int n_points = kNumGlobal + c.n_layers * kLayerPoints;
  I.names.assign(n_points, "");
  I.exists.assign(n_points, 0);
  I.hooks.assign(n_points, {});
  I.cached.assign(n_points, 0);
  I.active.assign(n_points, 0);
  for (int g = 0; g < kNumGlobal; ++g) I.names[g] = hook_name(static_cast<GlobalHook>(g));
  auto add = [&](int pid) { I.exists[pid] = 1; I.order.push_back(pid); I.index[I.names[pid]] = pid; };
  add(kEmbed);
  add(kPosEmbed);
  for (int l = 0; l < c.n_layers; ++l) {
    for (int p = 0; p < kLayerPoints; ++p) {
      int pid = I.layer_point(l, p);
      I.names[pid] = hook_name(static_cast<LayerHook>(p), l);
      bool ln_point = p == kLn1Scale || p == kLn1Norm || p == kLn2Scale || p == kLn2Norm;
      bool mlp_point = p == kResidMid || p == kLn2Scale || p == kLn2Norm || p == kMlpPre || p == kMlpPost || p == kMlpOut;
      if (ln_point && !c.has_ln()) continue;
      if (mlp_point && c.attn_only) continue;
      add(pid);
    }
  }
  if (c.has_ln()) {
    add(kLnfScale);
    add(kLnfNorm);
  }

  if (init_weights) {
    // TransformerLens "gpt2" init: every W_* ~ N(0, initializer_range), biases 0, LN (1, 0).
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg_.seed));
    torch::NoGradGuard no_grad;
    const double std = cfg_.init_range();
    for (auto& kv : named_parameters(/*recurse=*/true)) {
      const std::string& name = kv.key();
      auto leaf = name.substr(name.rfind('.') + 1);
      if (leaf.rfind("W_", 0) == 0) kv.value().normal_(0.0, std, gen);
    }
  }
}

bool HookedTransformerImpl::has_hook_point(const std::string& name) const { return impl_->index.count(name) > 0; }

std::vector<std::string> HookedTransformerImpl::hook_names() const {
  std::vector<std::string> r;
  for (int pid : impl_->order) r.push_back(impl_->names[pid]);
  return r;
}

int64_t HookedTransformerImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

int HookedTransformerImpl::add_hook(const std::string& name, HookFn fn) {
  auto& I = *impl_;
  auto it = I.index.find(name);
  if (it == I.index.end())
    fail("unknown hook point '" + name + "' (this model has " + std::to_string(I.order.size()) +
         " hook points, e.g. 'blocks.0.attn.hook_z'; see hook_names())");
  int handle = I.next_handle++;
  I.hooks[it->second].emplace_back(handle, std::move(fn));
  I.handle_point[handle] = it->second;
  I.refresh_active();
  return handle;
}

void HookedTransformerImpl::remove_hook(int handle) {
  auto& I = *impl_;
  auto it = I.handle_point.find(handle);
  if (it == I.handle_point.end()) return;
  auto& v = I.hooks[it->second];
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i].first == handle) { v.erase(v.begin() + static_cast<long>(i)); break; }
  I.handle_point.erase(it);
  I.refresh_active();
}

void HookedTransformerImpl::clear_hooks() {
  auto& I = *impl_;
  for (auto& v : I.hooks) v.clear();
  I.handle_point.clear();
  I.refresh_active();
}

void HookedTransformerImpl::set_cache(ActivationCache* cache, NamesFilter filter) {
  auto& I = *impl_;
  I.cache = cache;
  for (size_t p = 0; p < I.names.size(); ++p)
    I.cached[p] = cache != nullptr && I.exists[p] && (!filter || filter(I.names[p]));
  I.refresh_active();
}

void HookedTransformerImpl::set_cache_keep_graph(bool keep) { impl_->keep_graph = keep; }

namespace {
// [N, in] · [in, out] (+ b): oneDNN sgemm unless autograd needs the LibTorch op.
Tensor linear(const Tensor& x2, const Tensor& w, const Tensor& b) { return gemm::linear(x2, w, b); }
}  // namespace

Tensor HookedTransformerImpl::Impl::embed_forward(const ModelConfig& c, const Tensor& tokens, Tensor* pos) {
  const int64_t B = tokens.size(0), T = tokens.size(1), D = c.d_model;
  Tensor resid = embed->W_E.index_select(0, tokens.reshape({-1})).view({B, T, D});  // [B, T, D]
  hp(kEmbed, resid);
  *pos = pos_embed->W_pos.slice(0, 0, T).unsqueeze(0).expand({B, T, D});  // [B, T, D]
  hp(kPosEmbed, *pos);
  if (!c.shortformer()) resid = resid + *pos;
  return resid;
}

Tensor HookedTransformerImpl::Impl::drop_mask(const ModelConfig& c, const ForwardOptions& opts, int64_t B, int64_t T,
                                              const torch::Device& device) {
  Tensor drop;  // [T, T]
  {
    std::lock_guard<std::mutex> lock(derived_mu);
    if (!causal.defined() || causal.device() != device)
      causal = torch::ones({c.n_ctx, c.n_ctx}, torch::TensorOptions().dtype(torch::kBool).device(device)).triu(1);
    drop = causal.slice(0, 0, T).slice(1, 0, T);
  }
  if (opts.attention_mask.defined()) {
    TORCH_CHECK(opts.attention_mask.dim() == 2 && opts.attention_mask.size(0) == B && opts.attention_mask.size(1) == T,
                "ForwardOptions.attention_mask must be [B, T] = [", B, ", ", T, "], got ", opts.attention_mask.sizes());
    Tensor keep = opts.attention_mask.to(device).to(torch::kBool);  // [B, T]
    TORCH_CHECK(keep.select(1, 0).all().item<bool>(),
                "ForwardOptions.attention_mask: position 0 must be a real token in every row (right padding)");
    drop = drop.unsqueeze(0).logical_or(keep.logical_not().view({B, 1, T})).unsqueeze(1);  // [B, 1, T, T]
  }
  return drop;
}

Tensor HookedTransformerImpl::Impl::layer_norm_forward(const ModelConfig& c, const std::shared_ptr<LNModule>& ln,
                                                       const Tensor& x, int pid_scale, int pid_norm) {
  if (!ln) return x;
  if (any_active && (active[pid_scale] || active[pid_norm])) {
    Tensor xc = x - x.mean(-1, /*keepdim=*/true);
    Tensor scale = (xc.pow(2).mean(-1, /*keepdim=*/true) + c.eps).sqrt();  // [B, T, 1]
    hp(pid_scale, scale);
    Tensor out = xc / scale * ln->w + ln->b;  // [B, T, D]
    hp(pid_norm, out);
    return out;
  }
  return at::layer_norm(x, {c.d_model}, ln->w, ln->b, c.eps);
}

std::pair<Tensor, Tensor> HookedTransformerImpl::Impl::fused_qkv(const ModelConfig& c, int l, bool need_graph) {
  AttnModule& attn = *blocks[l]->attn;
  const int64_t D = c.d_model, H = c.n_heads, Dh = c.d_head;
  Tensor w_qkv, b_qkv;
  std::vector<Tensor> ws = {attn.W_Q, attn.W_K, attn.W_V};
  if (attn.b_Q.defined()) { ws.push_back(attn.b_Q); ws.push_back(attn.b_K); ws.push_back(attn.b_V); }
  auto build = [&]() {
    w_qkv = torch::stack({attn.W_Q, attn.W_K, attn.W_V}, 0).permute({2, 0, 1, 3}).reshape({D, 3 * H * Dh});
    if (attn.b_Q.defined()) b_qkv = torch::stack({attn.b_Q, attn.b_K, attn.b_V}, 0).reshape({3 * H * Dh});
  };
  if (need_graph && attn.W_Q.requires_grad()) {
    build();
    return {w_qkv, b_qkv};
  }
  std::lock_guard<std::mutex> lock(derived_mu);
  auto& F = fused[l];
  bool fresh = F.w.defined() && F.versions.size() == ws.size();
  for (size_t i = 0; fresh && i < ws.size(); ++i) fresh = F.versions[i] == ws[i]._version() && F.ptrs[i] == ws[i].data_ptr();
  if (!fresh) {
    torch::NoGradGuard ng;
    build();
    F.w = w_qkv;
    F.b = b_qkv;
    F.versions.clear();
    F.ptrs.clear();
    for (auto& t : ws) { F.versions.push_back(t._version()); F.ptrs.push_back(t.data_ptr()); }
  }
  return {F.w, F.b};
}

Tensor HookedTransformerImpl::Impl::attention_forward(const ModelConfig& c, int l, const Tensor& x, const Tensor& pos,
                                                      const Tensor& drop, const ForwardOptions& opts, bool need_graph) {
  AttnModule& attn = *blocks[l]->attn;
  const int64_t B = x.size(0), T = x.size(1), D = c.d_model, H = c.n_heads, Dh = c.d_head;
  auto P = [&](int p) { return layer_point(l, p); };
  auto [w_qkv, b_qkv] = fused_qkv(c, l, need_graph);
  Tensor q, k, v;  // [B, T, H, Dh]
  const Tensor x2 = x.reshape({B * T, D});
  if (!c.shortformer()) {
    Tensor qkv = linear(x2, w_qkv, b_qkv).view({B, T, 3, H, Dh});
    q = qkv.select(2, 0);
    k = qkv.select(2, 1);
    v = qkv.select(2, 2);
  } else {
    // Shortformer (TL): W_pos is added to the normalised Q and K inputs only.
    Tensor qk_in = (x + pos).reshape({B * T, D});
    Tensor w_qk = w_qkv.slice(1, 0, 2 * H * Dh), w_v = w_qkv.slice(1, 2 * H * Dh, 3 * H * Dh);
    Tensor b_qk, b_v;
    if (b_qkv.defined()) { b_qk = b_qkv.slice(0, 0, 2 * H * Dh); b_v = b_qkv.slice(0, 2 * H * Dh, 3 * H * Dh); }
    Tensor qk = linear(qk_in, w_qk, b_qk).view({B, T, 2, H, Dh});
    q = qk.select(2, 0);
    k = qk.select(2, 1);
    v = linear(x2, w_v, b_v).view({B, T, H, Dh});
  }
  hp(P(kQ), q);
  hp(P(kK), k);
  hp(P(kV), v);

  const double attn_scale = std::sqrt(static_cast<double>(Dh));
  Tensor scores = torch::matmul(q.permute({0, 2, 1, 3}), k.permute({0, 2, 3, 1})) / attn_scale;  // [B, H, T, T]
  scores = scores.masked_fill(drop, -std::numeric_limits<float>::infinity());
  hp(P(kScores), scores);
  Tensor pattern = torch::softmax(scores, /*dim=*/-1);  // [B, H, T, T]
  if (static_cast<int>(opts.frozen_patterns.size()) > l && opts.frozen_patterns[l].defined()) {
    const Tensor& fp = opts.frozen_patterns[l];
    TORCH_CHECK(fp.sizes() == pattern.sizes(), "ForwardOptions.frozen_patterns[", l, "] must be [B, H, T, T] = ",
                pattern.sizes(), ", got ", fp.sizes());
    pattern = fp.to(pattern.device(), pattern.scalar_type());
  }
  hp(P(kPattern), pattern);
  Tensor z = torch::matmul(pattern, v.permute({0, 2, 1, 3})).permute({0, 2, 1, 3});  // [B, T, H, Dh]
  hp(P(kZ), z);

  Tensor attn_out;  // [B, T, D]
  if (any_active && active[P(kResult)]) {
    // Per-head outputs, only when asked for: result[b,t,h] = z[b,t,h] · W_O[h].
    Tensor result = gemm::head_results(z, attn.W_O);  // [B, T, H, D]
    hp(P(kResult), result);
    attn_out = result.sum(2);
    if (attn.b_O.defined()) attn_out = attn_out + attn.b_O;
  } else {
    attn_out = linear(z.reshape({B * T, H * Dh}), attn.W_O.reshape({H * Dh, D}), attn.b_O).view({B, T, D});
  }
  hp(P(kAttnOut), attn_out);
  return attn_out;
}

Tensor HookedTransformerImpl::Impl::mlp_forward(const ModelConfig& c, int l, const Tensor& mid) {
  BlockModule& blk = *blocks[l];
  const int64_t B = mid.size(0), T = mid.size(1), D = c.d_model;
  auto P = [&](int p) { return layer_point(l, p); };
  Tensor x_mlp = layer_norm_forward(c, blk.ln2, mid, P(kLn2Scale), P(kLn2Norm));
  MlpModule& mlp = *blk.mlp;
  const int64_t M = mlp.W_in.size(1);
  Tensor pre = linear(x_mlp.reshape({B * T, D}), mlp.W_in, mlp.b_in).view({B, T, M});  // [B, T, M]
  hp(P(kMlpPre), pre);
  Tensor post;
  if (c.act_fn == "gelu_new") post = torch::gelu(pre, "tanh");
  else if (c.act_fn == "gelu") post = torch::gelu(pre);
  else post = torch::relu(pre);
  hp(P(kMlpPost), post);
  Tensor mlp_out = linear(post.reshape({B * T, M}), mlp.W_out, mlp.b_out).view({B, T, D});
  hp(P(kMlpOut), mlp_out);
  return mlp_out;
}

Tensor HookedTransformerImpl::Impl::unembed_forward(const ModelConfig& c, const Tensor& resid) {
  const int64_t B = resid.size(0), T = resid.size(1), D = c.d_model;
  Tensor xf = layer_norm_forward(c, ln_final, resid, kLnfScale, kLnfNorm);  // [B, T, D]
  Tensor xf2 = xf.reshape({B * T, D});
  Tensor logits;  // [B·T, V_out]
  if (c.tied_unembed) logits = gemm::mm(xf2, embed->W_E.t());
  else logits = linear(xf2, unembed->W_U, unembed->b_U);
  return logits.view({B, T, c.vocab_out()});
}

torch::Tensor HookedTransformerImpl::forward(const torch::Tensor& tokens_in, const ForwardOptions& opts) {
  auto& I = *impl_;
  const ModelConfig& c = cfg_;
  Tensor tokens = tokens_in;
  const bool unbatched = tokens.dim() == 1;
  if (unbatched) tokens = tokens.unsqueeze(0);
  TORCH_CHECK(tokens.dim() == 2, "HookedTransformer::forward: tokens must be [B, T] (or [T]), got ", tokens.sizes());
  TORCH_CHECK(!tokens.is_floating_point(), "HookedTransformer::forward: tokens must be integer ids, got ", tokens.dtype());
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (T > c.n_ctx)
    fail("input of " + std::to_string(T) + " tokens is longer than the model's n_ctx (" + std::to_string(c.n_ctx) + ")");
  if (T == 0 || B == 0) fail("empty input: tokens of shape " + shape_str(tokens.sizes()));
  {
    auto mm = torch::aminmax(tokens);
    int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
    if (lo < 0 || hi >= c.d_vocab)
      fail("token id " + std::to_string(lo < 0 ? lo : hi) + " is out of range for d_vocab " + std::to_string(c.d_vocab));
  }
  const auto device = I.embed->W_E.device();
  tokens = tokens.to(device, torch::kLong);
  const Tensor drop = I.drop_mask(c, opts, B, T, device);  // [T, T] or [B, 1, T, T]
  const bool need_graph = torch::GradMode::is_enabled();

  Tensor pos;                                             // [B, T, D]
  Tensor resid = I.embed_forward(c, tokens, &pos);        // [B, T, D]
  for (int l = 0; l < c.n_layers; ++l) {
    BlockModule& blk = *I.blocks[l];
    I.hp(I.layer_point(l, kResidPre), resid);
    Tensor x = I.layer_norm_forward(c, blk.ln1, resid, I.layer_point(l, kLn1Scale), I.layer_point(l, kLn1Norm));
    Tensor attn_out = I.attention_forward(c, l, x, pos, drop, opts, need_graph);  // [B, T, D]
    if (c.attn_only) {
      resid = resid + attn_out;
    } else {
      Tensor mid = resid + attn_out;  // [B, T, D]
      I.hp(I.layer_point(l, kResidMid), mid);
      resid = mid + I.mlp_forward(c, l, mid);
    }
    I.hp(I.layer_point(l, kResidPost), resid);
  }
  Tensor logits = I.unembed_forward(c, resid);  // [B, T, V_out]
  return unbatched ? logits.squeeze(0) : logits;
}

std::map<std::string, torch::Tensor> HookedTransformerImpl::state_dict() const {
  std::map<std::string, torch::Tensor> sd;
  for (const auto& kv : named_parameters(/*recurse=*/true)) sd[kv.key()] = kv.value();
  return sd;
}

void HookedTransformerImpl::load_state_dict(const std::map<std::string, torch::Tensor>& sd, const std::string& where) {
  auto params = named_parameters(/*recurse=*/true);
  for (const auto& kv : params) {
    auto it = sd.find(kv.key());
    if (it == sd.end()) fail(where + ": missing tensor '" + kv.key() + "' (expected shape " + shape_str(kv.value().sizes()) + ")");
    if (it->second.sizes() != kv.value().sizes())
      fail(where + ": tensor '" + kv.key() + "' has shape " + shape_str(it->second.sizes()) + ", expected " +
           shape_str(kv.value().sizes()));
  }
  for (const auto& kv : sd)
    if (!params.contains(kv.first)) fail(where + ": unexpected tensor '" + kv.first + "' for this config");
  torch::NoGradGuard no_grad;
  for (auto& kv : params) kv.value().copy_(sd.at(kv.key()));
}

torch::Tensor HookedTransformerImpl::W_E() const { return impl_->embed->W_E; }
torch::Tensor HookedTransformerImpl::W_pos() const { return impl_->pos_embed->W_pos; }
torch::Tensor HookedTransformerImpl::W_U() const {
  return cfg_.tied_unembed ? impl_->embed->W_E.t() : impl_->unembed->W_U;
}
torch::Tensor HookedTransformerImpl::b_U() const {
  if (impl_->unembed->b_U.defined()) return impl_->unembed->b_U;
  return torch::zeros({cfg_.vocab_out()}, impl_->embed->W_E.options());
}
namespace {
void check_layer(const ModelConfig& c, int layer) {
  TORCH_CHECK(layer >= 0 && layer < c.n_layers, "layer ", layer, " out of range: the model has ", c.n_layers, " layers");
}
}  // namespace
torch::Tensor HookedTransformerImpl::W_Q(int layer) const { check_layer(cfg_, layer); return impl_->blocks[layer]->attn->W_Q; }
torch::Tensor HookedTransformerImpl::W_K(int layer) const { check_layer(cfg_, layer); return impl_->blocks[layer]->attn->W_K; }
torch::Tensor HookedTransformerImpl::W_V(int layer) const { check_layer(cfg_, layer); return impl_->blocks[layer]->attn->W_V; }
torch::Tensor HookedTransformerImpl::W_O(int layer) const { check_layer(cfg_, layer); return impl_->blocks[layer]->attn->W_O; }

HookGuard::~HookGuard() {
  for (int h : handles_) model_->remove_hook(h);
}
void HookGuard::add(const std::string& name, HookFn fn) { handles_.push_back(model_->add_hook(name, std::move(fn))); }

namespace {
// Turns caching off again on scope exit, exceptions included.
struct CacheScope {
  HookedTransformerImpl* m;
  ~CacheScope() { m->set_cache(nullptr, {}); }
};
}  // namespace

std::pair<torch::Tensor, ActivationCache> run_with_cache(HookedTransformer& model, const torch::Tensor& tokens,
                                                         NamesFilter filter, const ForwardOptions& opts) {
  ActivationCache cache;
  model->set_cache(&cache, std::move(filter));
  CacheScope scope{model.get()};
  torch::Tensor logits = model->forward(tokens, opts);
  return {logits, std::move(cache)};
}

torch::Tensor run_with_hooks(HookedTransformer& model, const torch::Tensor& tokens,
                             const std::vector<std::pair<std::string, HookFn>>& hooks, const ForwardOptions& opts) {
  HookGuard guard(model);
  for (const auto& [name, fn] : hooks) guard.add(name, fn);
  return model->forward(tokens, opts);
}

torch::Tensor prepend_bos(const torch::Tensor& tokens, int64_t bos) {
  TORCH_CHECK(tokens.dim() == 1 || tokens.dim() == 2, "prepend_bos: tokens must be [T] or [B, T], got ", tokens.sizes());
  torch::Tensor t = tokens.dim() == 1 ? tokens.unsqueeze(0) : tokens;
  torch::Tensor col = torch::full({t.size(0), 1}, bos, t.options());
  torch::Tensor r = torch::cat({col, t}, 1);
  return tokens.dim() == 1 ? r.squeeze(0) : r;
}

std::pair<torch::Tensor, torch::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id) {
  int64_t T = 0;
  for (const auto& s : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(s.size()));
  const int64_t B = static_cast<int64_t>(seqs.size());
  torch::Tensor tokens = torch::full({B, T}, pad_id, torch::kLong);
  torch::Tensor mask = torch::zeros({B, T}, torch::kLong);
  auto ta = tokens.accessor<int64_t, 2>();
  auto ma = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < seqs[b].size(); ++t) { ta[b][t] = seqs[b][t]; ma[b][t] = 1; }
  return {tokens, mask};
}

}  // namespace circuitlab::models
