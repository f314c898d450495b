// run_to_hook (see run_to_hook.h): a hook on the point keeps the activation and ends the forward
// by throwing a private type, caught here; HookGuard removes the hook on the way out.
#include "models/run_to_hook.h"

#include "core/error.h"

namespace circuitlab::models {

namespace {
struct ReachedHook {};  // thrown through HookedTransformer::forward, never past run_to_hook
}  // namespace

torch::Tensor run_to_hook(HookedTransformer& model, const torch::Tensor& tokens, const std::string& hook_name,
                          const ForwardOptions& opts) {
  if (!model->has_hook_point(hook_name)) fail("hook '" + hook_name + "' is not a hook point of this model");
  torch::Tensor out;
  HookGuard guard(model);
  guard.add(hook_name, [&out](const torch::Tensor& act, const std::string&) -> std::optional<torch::Tensor> {
    out = act.detach();
    throw ReachedHook{};
  });
  try {
    model->forward(tokens, opts);
  } catch (const ReachedHook&) {
  }
  if (!out.defined()) fail("hook '" + hook_name + "' was not reached by the forward pass");
  return out;
}

}  // namespace circuitlab::models
