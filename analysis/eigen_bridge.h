// The one place where LibTorch tensors and Eigen matrices meet: explicit row-major maps in
// both directions, always copying into double precision (Eigen side) or the requested dtype
// (torch side). Not a general converter: 1-D and 2-D dense tensors only.
#pragma once
#include <torch/torch.h>

#include <Eigen/Dense>

namespace circuitlab::analysis {

using Mat = Eigen::MatrixXd;    // column-major double, the analysis layer's working type
using Vec = Eigen::VectorXd;
using CVec = Eigen::VectorXcd;
using RowMajorMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// t: [R, C] (any float dtype, any device) -> Mat [R, C] in double. A 1-D tensor [N] becomes [N, 1].
Mat to_eigen(const torch::Tensor& t);
// m: [R, C] -> CPU tensor [R, C] of `dtype` (contiguous).
torch::Tensor to_torch(const Mat& m, torch::Dtype dtype = torch::kFloat64);

}  // namespace circuitlab::analysis
