// The subcommands' shared file and argument helpers (see cli_io.h).
#include "apps/cli_io.h"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::apps {

// float32 C-order .npy (format 1.0), written atomically.
void write_npy_f32(const std::string& path, const torch::Tensor& t_in) {
  torch::Tensor t = t_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + (t.dim() == 1 || i + 1 < t.dim() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string pre = std::string("\x93NUMPY", 6) + std::string(1, '\x01') + std::string(1, '\x00');
  pre.push_back(static_cast<char>(header.size() & 0xff));
  pre.push_back(static_cast<char>(header.size() >> 8));
  AtomicFile f(path);
  f.write(pre);
  f.write(header);
  f.write(t.data_ptr(), static_cast<size_t>(t.numel()) * sizeof(float));
  f.commit();
}

std::vector<int64_t> parse_token_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::string norm = s;
  std::replace(norm.begin(), norm.end(), ',', ' ');
  std::istringstream in(norm);
  std::string tok;
  while (in >> tok) {
    try {
      size_t used = 0;
      long long v = std::stoll(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
      ids.push_back(v);
    } catch (const std::exception&) {
      fail("--tokens: '" + tok + "' is not an integer token id (expected e.g. --tokens \"464 3290 318\")");
    }
  }
  return ids;
}

}  // namespace circuitlab::apps
