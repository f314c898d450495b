// libFuzzer target: the safetensors reader (8-byte header length, JSON header, data section)
// on arbitrary file contents. A malformed file must be an Error naming the file; an accepted
// one must give every tensor a view inside the file whose byte size matches dtype x shape.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "models/safetensors.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string path = fuzz::write_scratch("model.safetensors", bytes, size);
  try {
    auto f = models::SafetensorsFile::open(path);
    for (const auto& name : f.names()) {
      const auto& info = f.info(name);
      FUZZ_CHECK(info.begin <= info.end && info.end <= f.file_size(), "tensor %s [%llu, %llu) outside the file",
                 name.c_str(), (unsigned long long)info.begin, (unsigned long long)info.end);
      torch::Tensor t = f.view(name);
      FUZZ_CHECK(t.numel() * t.element_size() == int64_t(info.end - info.begin), "tensor %s: %lld bytes viewed, %llu stored",
                 name.c_str(), (long long)(t.numel() * t.element_size()), (unsigned long long)(info.end - info.begin));
      // Touch every byte (an out-of-bounds view shows up as an ASan/SEGV report here).
      volatile double s = t.to(torch::kDouble).sum().item<double>();
      (void)s;
      f.release(name);
    }
  } catch (const Error&) {
  }
  return 0;
}
