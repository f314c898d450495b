// safetensors reader/writer of our own (huggingface/safetensors layout): 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets}} (+ "__metadata__"),
// then the data section; offsets are relative to it. Reading memory-maps the file and
// validates every offset, size and shape; writing is atomic with the header padded to 8.
// Not a model loader (model_dir.h).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace circuitlab::models {

struct SafetensorInfo {
  std::string name;
  std::string dtype;           // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section, end exclusive
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; Error naming the file (and tensor) on anything malformed.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const;
  std::vector<std::string> names() const;  // in data-offset order
  bool contains(const std::string& name) const;
  const SafetensorInfo& info(const std::string& name) const;  // Error when missing
  const std::map<std::string, std::string>& metadata() const;
  uint64_t file_size() const;

  // Zero-copy, READ-ONLY view into the mapping (keeps it alive); copied when misaligned.
  // Never write into it: clone() first.
  torch::Tensor view(const std::string& name) const;
  // Drops the resident pages of one tensor's bytes (madvise DONTNEED): a loader that has
  // copied a tensor out calls this so the peak RSS stays near the model size.
  void release(const std::string& name) const;
  // The same for bytes [from, to) of one tensor (chunked copies of big tensors).
  void release(const std::string& name, uint64_t from, uint64_t to) const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

// Reads every tensor into owned memory.
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);
// Atomic write; tensors are written contiguous, little-endian, sorted by (alignment desc, name)
// as the reference writer does; metadata lands in "__metadata__" (plus "format": "pt").
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32" <-> torch dtype; Error naming `where` for unsupported dtypes.
torch::ScalarType safetensors_dtype(const std::string& dtype, const std::string& where);
std::string safetensors_dtype_name(torch::ScalarType t);

}  // namespace circuitlab::models
