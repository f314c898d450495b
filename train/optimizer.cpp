// See optimizer.h.
#include "train/optimizer.h"

#include <algorithm>
#include <map>

namespace circuitlab::train {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool decays(const std::string& n, bool decay_embeddings) {
  for (const char* m : {"W_Q", "W_K", "W_V", "W_O", "W_U", "W_in", "W_out"})
    if (ends_with(n, std::string(".") + m) || n == m) return true;
  if (decay_embeddings && (ends_with(n, "W_E") || ends_with(n, "W_pos"))) return true;
  return false;
}

std::vector<NamedParam> named_trainable_params(models::HookedTransformer& model, bool decay_embeddings) {
  // TL names come from state_dict(); match them to the module's parameters by storage, so the
  // groups follow TransformerLens names whatever the module tree is called inside models/.
  std::map<const void*, std::string> tl_name;
  for (const auto& [name, t] : model->state_dict())
    if (t.defined()) tl_name.emplace(t.data_ptr(), name);
  std::vector<NamedParam> out;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    NamedParam np;
    auto it = tl_name.find(p.data_ptr());
    if (it != tl_name.end()) {
      np.name = it->second;
      np.decay = decays(np.name, decay_embeddings);
    } else {  // not exposed under a TL name: decay matrices that are not embeddings
      np.name = item.key();
      np.decay = p.dim() >= 2 && item.key().find("embed") == std::string::npos;
    }
    np.param = p;
    out.push_back(std::move(np));
  }
  std::sort(out.begin(), out.end(), [](const NamedParam& a, const NamedParam& b) { return a.name < b.name; });
  return out;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<NamedParam>& params, const AdamWSettings& s) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : params) (p.decay ? decay : no_decay).push_back(p.param);
  auto base = torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(0.0);
  auto with_decay = std::make_unique<torch::optim::AdamWOptions>(base);
  with_decay->weight_decay(s.weight_decay);
  auto without = std::make_unique<torch::optim::AdamWOptions>(base);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::move(with_decay));
  groups.emplace_back(no_decay, std::move(without));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), base);
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

}  // namespace circuitlab::train
