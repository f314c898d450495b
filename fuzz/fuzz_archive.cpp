// libFuzzer target: the archive corpus reader (tar / tar.gz / tar.xz, and the OpenWebText
// layout of .xz members that are themselves tar.xz) on arbitrary bytes through libarchive.
// A bad archive must be an Error naming the file (and member); never a crash or a hang.
#include <cstdint>
#include <string>

#include "data/corpus.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string path = fuzz::write_scratch("corpus.tar.xz", bytes, size);
  uint64_t total = 0;
  try {
    data::read_documents({path, data::SourceKind::Archive}, [&](data::Document&& d) {
      FUZZ_CHECK(!d.name.empty(), "document without a name");
      total += d.text.size();
    });
  } catch (const Error&) {
  }
  (void)total;
  return 0;
}
