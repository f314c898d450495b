// libFuzzer target: the JSONL corpus reader (one JSON object a line with a "text" field) on
// arbitrary bytes. A bad line must be an Error naming file:line; never a crash or a hang.
#include <cstdint>
#include <string>

#include "data/corpus.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string path = fuzz::write_scratch("docs.jsonl", bytes, size);
  size_t total = 0;
  try {
    data::read_documents({path, data::SourceKind::Jsonl}, [&](data::Document&& d) {
      FUZZ_CHECK(!d.name.empty(), "document without a name");
      total += d.text.size();
    });
  } catch (const Error&) {
  }
  (void)total;
  return 0;
}
