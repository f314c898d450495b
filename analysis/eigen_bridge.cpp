// LibTorch <-> Eigen: a contiguous row-major double tensor is mapped as RowMajorMat and copied
// into the column-major Mat (Eigen handles the transpose of the storage order).
#include "analysis/eigen_bridge.h"

namespace circuitlab::analysis {

Mat to_eigen(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() == 1 || t.dim() == 2, "to_eigen: expected a 1-D or 2-D tensor, got ", t.dim(), "-D");
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t rows = c.size(0), cols = c.dim() == 2 ? c.size(1) : 1;
  Eigen::Map<const RowMajorMat> map(c.data_ptr<double>(), rows, cols);
  return Mat(map);
}

torch::Tensor to_torch(const Mat& m, torch::Dtype dtype) {
  torch::Tensor out = torch::empty({static_cast<int64_t>(m.rows()), static_cast<int64_t>(m.cols())},
                                   torch::TensorOptions().dtype(torch::kFloat64));
  Eigen::Map<RowMajorMat> map(out.data_ptr<double>(), m.rows(), m.cols());
  map = m;
  return dtype == torch::kFloat64 ? out : out.to(dtype);
}

}  // namespace circuitlab::analysis
