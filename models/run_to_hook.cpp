// run_to_hooks (see run_to_hook.h): hooks on the points keep the activations; the one on the
// latest point ends the forward by throwing a private type, caught here. HookGuard removes the
// hooks on the way out.
#include "models/run_to_hook.h"

#include <algorithm>

#include "core/error.h"

namespace circuitlab::models {

namespace {
struct ReachedLastHook {};  // thrown through HookedTransformer::forward, never past run_to_hooks
}  // namespace

ActivationCache run_to_hooks(HookedTransformer& model, const torch::Tensor& tokens,
                             const std::vector<std::string>& hook_names, const ForwardOptions& opts) {
  if (hook_names.empty()) fail("run_to_hooks: no hook point named");
  const std::vector<std::string> order = model->hook_names();
  size_t last = 0;
  for (size_t i = 0; i < hook_names.size(); ++i) {
    if (!model->has_hook_point(hook_names[i])) fail("hook '" + hook_names[i] + "' is not a hook point of this model");
    if (std::find(order.begin(), order.end(), hook_names[i]) > std::find(order.begin(), order.end(), hook_names[last]))
      last = i;
  }
  ActivationCache cache;
  {
    HookGuard guard(model);
    for (size_t i = 0; i < hook_names.size(); ++i)
      guard.add(hook_names[i], [&cache, stop = i == last](const torch::Tensor& a, const std::string& n) -> std::optional<torch::Tensor> {
        cache[n] = a.detach();
        if (stop) throw ReachedLastHook{};
        return std::nullopt;
      });
    try {
      model->forward(tokens, opts);
    } catch (const ReachedLastHook&) {
    }
  }
  for (const auto& n : hook_names)
    if (!cache.count(n)) fail("hook '" + n + "' was not reached by the forward pass");
  return cache;
}

torch::Tensor run_to_hook(HookedTransformer& model, const torch::Tensor& tokens, const std::string& hook_name,
                          const ForwardOptions& opts) {
  return run_to_hooks(model, tokens, {hook_name}, opts).at(hook_name);
}

}  // namespace circuitlab::models
