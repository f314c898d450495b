// See checkpoint.h.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "models/model_dir.h"

namespace circuitlab::train {

namespace fs = std::filesystem;

namespace {
constexpr const char* kStateFormat = "circuitlab-train-state-v1";

// step_<N> -> N, or -1 for other names.
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

std::string serialize(const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  torch::serialize::OutputArchive ar;
  fill(ar);
  std::ostringstream os;
  ar.save_to(os);
  return os.str();
}
}  // namespace

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail(dir + ": cannot open directory to fsync (" + std::strerror(errno) + ")");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(dir + ": fsync failed (" + std::strerror(errno) + ")");
}

std::vector<std::string> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!is_directory(root)) return {};
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    int64_t s = step_of(e.path().filename().string());
    if (s >= 0 && file_exists((e.path() / "state.json").string())) found.emplace_back(s, e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::optional<std::string> latest_checkpoint(const std::string& root) {
  auto all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void commit_checkpoint_dir(const std::string& root, const std::string& tmp, const std::string& final_dir,
                           int64_t keep) {
  fsync_dir(tmp);
  // Replace an older copy of the same step (a resumed run passing it again).
  if (fs::exists(final_dir)) {
    const std::string old = final_dir + ".old-" + std::to_string(::getpid());
    fs::rename(final_dir, old);
    fs::remove_all(old);
  }
  fs::rename(tmp, final_dir);
  fsync_dir(root);

  // Prune: keep the newest `keep` complete checkpoints, drop stale temp dirs of dead writers.
  auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i]);
  for (const auto& e : fs::directory_iterator(root)) {
    std::string n = e.path().filename().string();
    if (n.rfind(".tmp-step_", 0) == 0 || n.find(".old-") != std::string::npos) fs::remove_all(e.path());
  }
}

std::string save_checkpoint(const std::string& root, const TrainerState& state, models::HookedTransformer& model,
                            torch::optim::Optimizer& opt, const data::VocabMap* vocab_map, int keep) {
  make_dirs(root);
  const std::string final_dir = root + "/step_" + std::to_string(state.step);
  const std::string tmp = root + "/.tmp-step_" + std::to_string(state.step) + "-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  make_dirs(tmp);
  models::save_model_dir(model, tmp, vocab_map);
  write_file_atomic(tmp + "/optimizer.pt", serialize([&](auto& ar) { opt.save(ar); }));
  torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  write_file_atomic(tmp + "/rng.pt", serialize([&](auto& ar) { ar.write("cpu_generator", rng); }));
  nlohmann::json j = {{"format", kStateFormat},
                      {"step", state.step},
                      {"tokens", state.tokens},
                      {"elapsed_s", state.elapsed_s},
                      {"sampler_seed", state.sampler.seed},
                      {"sampler_batches_drawn", state.sampler.batches_drawn}};
  write_file_atomic(tmp + "/state.json", j.dump(2) + "\n");  // last: marks the dir complete
  commit_checkpoint_dir(root, tmp, final_dir, keep);
  return final_dir;
}

TrainerState load_checkpoint(const std::string& dir, models::HookedTransformer& model, torch::optim::Optimizer& opt,
                             const torch::Device& device) {
  const std::string state_path = dir + "/state.json";
  auto j = nlohmann::json::parse(read_file(state_path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", nlohmann::json()) != kStateFormat)
    fail(state_path + ": not a circuitlab training state (expected format " + kStateFormat + ")");
  json_fields::Object o(j, state_path);
  TrainerState s;
  s.step = o.int_in("step", 0, std::numeric_limits<int64_t>::max());
  s.tokens = o.int_in("tokens", 0, std::numeric_limits<int64_t>::max());
  s.elapsed_s = o.req<double>("elapsed_s");
  s.sampler.seed = o.req<uint64_t>("sampler_seed");
  s.sampler.batches_drawn = o.req<uint64_t>("sampler_batches_drawn");
  // Weights: the checkpoint is a model dir; copy its tensors in by TransformerLens name.
  auto loaded = models::load_model_dir(dir);
  model->load_state_dict(loaded.model->state_dict(), dir + "/model.safetensors");
  {
    std::istringstream is(read_file(dir + "/optimizer.pt"));
    torch::serialize::InputArchive ar;
    try {
      ar.load_from(is, device);
      opt.load(ar);
    } catch (const c10::Error& e) {
      fail(dir + "/optimizer.pt: cannot restore the optimizer state (" +
           std::string(e.what_without_backtrace()).substr(0, 200) + ")");
    }
  }
  {
    std::istringstream is(read_file(dir + "/rng.pt"));
    torch::serialize::InputArchive ar;
    torch::Tensor rng;
    try {
      ar.load_from(is);
      ar.read("cpu_generator", rng);
    } catch (const c10::Error& e) {
      fail(dir + "/rng.pt: cannot restore the RNG state");
    }
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng);
  }
  return s;
}

}  // namespace circuitlab::train
