// Data parallelism over torch c10d: a ProcessGroupGloo (NCCL where the LibTorch build has it
// and the device is CUDA) rendezvousing through a TCPStore at host:port. Each rank takes its
// share of the global batch; gradients are flattened into one buffer, all-reduced and
// averaged. Not a process launcher (apps/cmd_train.cpp spawns local workers for --nproc).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace circuitlab::train {

class DataParallel {
 public:
  // master: "host:port"; rank 0 hosts the store. Error naming the field when malformed.
  DataParallel(int rank, int world_size, const std::string& master, int timeout_s = 300);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  const char* backend() const;

  // grads (any shapes) and extras (scalars to average with them, e.g. the loss) are replaced
  // by their mean over ranks. One flattened all-reduce.
  void average(std::vector<torch::Tensor>& grads, std::vector<double>& extras);
  // Copies rank 0's tensors into every rank's (same shapes), e.g. initial weights.
  void broadcast_from_root(std::vector<torch::Tensor>& tensors);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_, world_;
};

// Splits "host:port"; Error naming `what` when malformed.
std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& what);

}  // namespace circuitlab::train
