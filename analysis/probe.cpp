// Linear probes: features at hook points, token-derived labels, softmax regression with L2 on
// LibTorch (full-batch LBFGS), the held-out split by group and the two baselines.
#include "analysis/probe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <torch/torch.h>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "models/hook_names.h"
#include "models/run_to_hook.h"

namespace circuitlab::analysis {

using torch::Tensor;

ProbePosition parse_probe_position(const std::string& s) {
  if (s == "last") return ProbePosition::Last;
  if (s == "mean") return ProbePosition::Mean;
  if (s == "all") return ProbePosition::All;
  fail("--position: '" + s + "' is not one of last, mean, all");
}

LabeledTexts read_probe_jsonl(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> raw;
  LabeledTexts out;
  size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(line_no);
    const auto j = json_fields::parse(line, where);
    if (!j.is_object()) fail(where + ": expected an object {\"text\": ..., \"label\": ...}");
    if (!j.contains("text")) json_fields::field_error(where, "text", "is missing");
    if (!j.contains("label")) json_fields::field_error(where, "label", "is missing");
    out.texts.push_back(json_fields::as<std::string>(j["text"], where, "text"));
    const auto& l = j["label"];
    if (l.is_string()) raw.push_back(l.get<std::string>());
    else if (l.is_number_integer()) raw.push_back(std::to_string(l.get<int64_t>()));
    else json_fields::field_error(where, "label", "must be a string or an integer, got " + l.dump());
  }
  if (out.texts.empty()) fail(path + ": no labelled lines (empty file)");
  const std::set<std::string> cls(raw.begin(), raw.end());
  out.classes.assign(cls.begin(), cls.end());
  for (const auto& r : raw)
    out.labels.push_back(std::lower_bound(out.classes.begin(), out.classes.end(), r) - out.classes.begin());
  return out;
}

std::vector<ProbeData> text_features(models::HookedTransformer& model, const std::vector<std::vector<int64_t>>& ids,
                                     const LabeledTexts& lt, const std::vector<std::string>& hooks, ProbePosition pos) {
  torch::NoGradGuard ng;
  const size_t H = hooks.size();
  std::vector<std::vector<Tensor>> rows(H);
  std::vector<int64_t> y, group;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Tensor toks = torch::tensor(ids[i], torch::kLong).view({1, -1});
    const auto cache = models::run_to_hooks(model, toks, hooks);
    const int64_t T = toks.size(1);
    const int64_t n = pos == ProbePosition::All ? T : 1;
    for (size_t h = 0; h < H; ++h) {
      const Tensor a = cache.at(hooks[h])[0].reshape({T, -1}).to(torch::kFloat);  // [T, D]
      if (pos == ProbePosition::Last) rows[h].push_back(a.slice(0, T - 1, T));
      else if (pos == ProbePosition::Mean) rows[h].push_back(a.slice(0, T > 1 ? 1 : 0, T).mean(0, true));
      else rows[h].push_back(a);
    }
    for (int64_t t = 0; t < n; ++t) {
      y.push_back(lt.labels[i]);
      group.push_back(static_cast<int64_t>(i));
    }
  }
  std::vector<ProbeData> out(H);
  for (size_t h = 0; h < H; ++h)
    out[h] = {torch::cat(rows[h], 0), torch::tensor(y, torch::kLong), torch::tensor(group, torch::kLong), lt.classes};
  return out;
}

std::vector<ProbeData> token_features(models::HookedTransformer& model, const data::TokenShard& shard,
                                      const std::optional<data::VocabMap>& vocab_map, const std::string& kind,
                                      int64_t token, int64_t windows, const std::vector<std::string>& hooks) {
  if (kind != "repeat" && kind != "next-is") fail("--label: unknown kind '" + kind + "' (expected repeat or next-is)");
  const int64_t T = model->cfg().n_ctx, len = static_cast<int64_t>(shard.size());
  if (len < T) fail(shard.path() + ": " + std::to_string(len) + " tokens, fewer than one window of " + std::to_string(T));
  windows = std::max<int64_t>(1, windows);
  std::vector<int64_t> ids, y, group;
  for (int64_t w = 0; w < windows; ++w) {
    const int64_t off = windows > 1 ? (len - T) * w / (windows - 1) : 0;
    std::vector<int64_t> win;
    for (int64_t t = 0; t < T; ++t) {
      const int32_t g = shard[static_cast<size_t>(off + t)];
      win.push_back(vocab_map ? vocab_map->to_compact(g) : g);
    }
    std::set<int64_t> seen;
    for (int64_t t = 0; t < T; ++t) {
      if (kind == "repeat") y.push_back(seen.count(win[t]) ? 1 : 0);
      else y.push_back(t + 1 < T && win[t + 1] == token ? 1 : 0);
      seen.insert(win[t]);
      group.push_back(w);
    }
    ids.insert(ids.end(), win.begin(), win.end());
  }
  torch::NoGradGuard ng;
  const Tensor toks = torch::tensor(ids, torch::kLong).view({windows, T});
  Tensor keep = torch::ones({windows, T}, torch::kBool);
  if (kind == "next-is") keep.select(1, T - 1).fill_(false);
  keep = keep.flatten();
  std::vector<std::vector<Tensor>> parts(hooks.size());
  for (int64_t b = 0; b < windows; b += 16) {
    const auto cache = models::run_to_hooks(model, toks.slice(0, b, std::min(windows, b + 16)), hooks);
    for (size_t h = 0; h < hooks.size(); ++h) {
      const Tensor a = cache.at(hooks[h]);
      parts[h].push_back(a.reshape({a.size(0) * T, -1}).to(torch::kFloat));
    }
  }
  std::vector<ProbeData> out(hooks.size());
  const Tensor yt = torch::tensor(y, torch::kLong).index({keep}), gt = torch::tensor(group, torch::kLong).index({keep});
  for (size_t h = 0; h < hooks.size(); ++h) out[h] = {torch::cat(parts[h], 0).index({keep}), yt, gt, {"0", "1"}};
  return out;
}

std::vector<std::string> expand_probe_hooks(const models::HookedTransformer& model, const std::string& spec) {
  std::string kind;
  const auto star = spec.find(".*.");
  if (spec.rfind("blocks", 0) == 0 && star != std::string::npos) {
    kind = models::hook_kind(models::hook_name(spec.substr(0, star) + ".0." + spec.substr(star + 3)));
  } else {
    const auto layer_kinds = models::layer_hook_kinds();
    if (std::find(layer_kinds.begin(), layer_kinds.end(), spec) != layer_kinds.end()) kind = spec;
  }
  std::vector<std::string> out;
  if (kind.empty()) {
    std::string full;
    try {
      full = models::hook_name(spec);
    } catch (const Error&) {
      fail("--hook: unknown hook '" + spec + "'");
    }
    out.push_back(full);
  } else {
    for (int l = 0; l < model->cfg().n_layers; ++l) out.push_back(models::hook_name(kind, l));
  }
  for (const auto& h : out)
    if (!model->has_hook_point(h)) fail("--hook: the model has no hook point '" + h + "'");
  if (out.empty()) fail("--hook: '" + spec + "' names no hook point of this model (0 layers)");
  return out;
}

namespace {

// Softmax regression on X [N, F] -> (W [F, C], b [C]): mean cross-entropy + l2·|W|²/2, full-batch
// LBFGS (strong Wolfe line search) from zero.
std::pair<Tensor, Tensor> fit_softmax(const Tensor& X, const Tensor& y, int64_t C, double l2, int epochs) {
  Tensor W = torch::zeros({X.size(1), C}, torch::TensorOptions().dtype(torch::kFloat).requires_grad(true));
  Tensor b = torch::zeros({C}, torch::TensorOptions().dtype(torch::kFloat).requires_grad(true));
  torch::optim::LBFGS opt({W, b}, torch::optim::LBFGSOptions(1.0).max_iter(20).line_search_fn("strong_wolfe"));
  auto closure = [&]() {
    opt.zero_grad();
    Tensor loss = torch::nn::functional::cross_entropy(torch::matmul(X, W) + b, y) + 0.5 * l2 * W.pow(2).sum();
    loss.backward();
    return loss;
  };
  for (int e = 0; e < epochs; ++e) opt.step(closure);
  return {W.detach(), b.detach()};
}

double accuracy(const Tensor& logits, const Tensor& y) {
  if (y.numel() == 0) return 0.0;
  return logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

std::vector<int64_t> class_counts(const Tensor& y, int64_t C) {
  const Tensor c = torch::bincount(y, {}, C);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + C);
}

// Test mask [N] over rows: a seeded `holdout` fraction of the groups (at least one, never all).
Tensor holdout_mask(const Tensor& group, double holdout, uint64_t seed) {
  const Tensor g = std::get<0>(torch::_unique(group));
  const int64_t G = g.numel();
  if (G < 2) fail("probe: " + std::to_string(G) + " text/window only; a held-out split needs at least 2");
  auto gen = at::detail::createCPUGenerator(seed);
  const Tensor perm = torch::randperm(G, gen, torch::kLong);
  const int64_t n_test = std::clamp<int64_t>(std::llround(holdout * G), 1, G - 1);
  return torch::isin(group, g.index({perm.slice(0, 0, n_test)}));
}

}  // namespace

ProbeResult train_probe(const ProbeData& d, const ProbeOptions& o) {
  torch::manual_seed(o.seed);
  const int64_t C = static_cast<int64_t>(d.classes.size());
  TORCH_CHECK(d.X.dim() == 2 && d.y.numel() == d.X.size(0), "probe: X [N, D] and y [N] disagree");
  ProbeResult r;
  r.counts = class_counts(d.y, C);
  const int64_t present = std::count_if(r.counts.begin(), r.counts.end(), [](int64_t n) { return n > 0; });
  if (C < 2 || present < 2) fail("probe: the labels hold one class only ('" + (C ? d.classes[0] : std::string("")) + "'); a probe needs at least two");
  if (o.holdout <= 0 || o.holdout >= 1) fail("--holdout: must be in (0, 1)");
  const Tensor test = holdout_mask(d.group, o.holdout, o.seed), train = test.logical_not();
  const Tensor Xtr = d.X.index({train}), ytr = d.y.index({train}), Xte = d.X.index({test}), yte = d.y.index({test});
  r.n_train = Xtr.size(0);
  r.n_test = Xte.size(0);
  r.train_counts = class_counts(ytr, C);
  r.test_counts = class_counts(yte, C);
  // Standardise with the training split's statistics; a constant feature keeps std 1.
  r.mean = Xtr.mean(0);
  r.std = Xtr.std(0, /*unbiased=*/false);
  r.std = torch::where(r.std > 1e-6, r.std, torch::ones_like(r.std));
  const Tensor Str = (Xtr - r.mean) / r.std, Ste = (Xte - r.mean) / r.std;
  std::tie(r.W, r.b) = fit_softmax(Str, ytr, C, o.l2, o.epochs);
  r.train_acc = accuracy(torch::matmul(Str, r.W) + r.b, ytr);
  r.test_acc = accuracy(torch::matmul(Ste, r.W) + r.b, yte);
  const int64_t major = std::max_element(r.train_counts.begin(), r.train_counts.end()) - r.train_counts.begin();
  r.majority_acc = yte.eq(major).to(torch::kDouble).mean().item<double>();
  auto gen = at::detail::createCPUGenerator(o.seed + 1);
  Tensor dir = torch::randn({d.X.size(1), 1}, gen, torch::kFloat);
  dir = dir / dir.norm();
  const auto [w1, b1] = fit_softmax(torch::matmul(Str, dir), ytr, C, o.l2, o.epochs);
  r.random_acc = accuracy(torch::matmul(torch::matmul(Ste, dir), w1) + b1, yte);
  if (C == 2) {
    const Tensor v = (r.W.select(1, 1) - r.W.select(1, 0)) / r.std;
    r.direction = v / v.norm().clamp_min(1e-12);
  }
  return r;
}

}  // namespace circuitlab::analysis
