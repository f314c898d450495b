// See data_parallel.h. The Gloo process group header is compiled only with USE_C10D_GLOO (the
// Debian LibTorch 1.13.1 is built with Gloo; its headers come from libgloo-dev).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include "train/data_parallel.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>

#include "core/error.h"

namespace circuitlab::train {

std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& what) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    fail(what + ": expected host:port, got '" + s + "'");
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail(what + ": port of '" + s + "' is not a number");
  }
  if (port <= 0 || port > 65535) fail(what + ": port of '" + s + "' must be in 1..65535");
  return {s.substr(0, colon), port};
}

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

DataParallel::DataParallel(int rank, int world_size, const std::string& master, int timeout_s)
    : impl_(std::make_unique<Impl>()), rank_(rank), world_(world_size) {
  if (world_size < 1) fail("world_size must be >= 1");
  if (rank < 0 || rank >= world_size) fail("rank must be in [0, `world_size`)");
  auto [host, port] = parse_host_port(master, "master");
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<size_t>(world_size);
  so.waitWorkers = true;
  so.timeout = std::chrono::seconds(timeout_s);
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(host, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(timeout_s));
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, rank, world_size, opts);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    fail("data parallel: cannot join the process group at " + master + " as rank " + std::to_string(rank) +
         " of " + std::to_string(world_size) + " (" + msg.substr(0, msg.find('\n')) + ")");
  }
}

DataParallel::~DataParallel() = default;

const char* DataParallel::backend() const { return "gloo"; }

void DataParallel::average(std::vector<torch::Tensor>& grads, std::vector<double>& extras) {
  if (world_ == 1) return;
  std::vector<torch::Tensor> flat;
  flat.reserve(grads.size() + 1);
  for (auto& g : grads) flat.push_back(g.detach().reshape({-1}).to(torch::kCPU, torch::kFloat32));
  flat.push_back(torch::tensor(std::vector<float>(extras.begin(), extras.end()), torch::kFloat32));
  std::vector<torch::Tensor> buf{torch::cat(flat)};  // [sum of numels + extras]
  impl_->pg->allreduce(buf)->wait();
  buf[0].div_(static_cast<double>(world_));
  int64_t off = 0;
  for (auto& g : grads) {
    const int64_t n = g.numel();
    g.copy_(buf[0].slice(0, off, off + n).view(g.sizes()));
    off += n;
  }
  for (size_t i = 0; i < extras.size(); ++i) extras[i] = buf[0][off + static_cast<int64_t>(i)].item<double>();
}

void DataParallel::broadcast_from_root(std::vector<torch::Tensor>& tensors) {
  if (world_ == 1) return;
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t.detach().to(torch::kCPU).contiguous().clone()};
    impl_->pg->broadcast(one)->wait();
    torch::NoGradGuard ng;
    t.copy_(one[0]);
  }
}

void DataParallel::barrier() {
  if (world_ == 1) return;
  impl_->pg->barrier()->wait();
}

}  // namespace circuitlab::train
