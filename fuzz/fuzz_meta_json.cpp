// libFuzzer target: meta.json of a prepared corpus (data::read_corpus_meta, what corpus-stats
// reads) on arbitrary bytes. A bad field must be an Error naming the file and the field.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/prepare.h"
#include "fuzz/fuzz_util.h"

using namespace circuitlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string path = fuzz::write_scratch("meta.json", bytes, size);
  try {
    const data::CorpusMeta m = data::read_corpus_meta(path);
    // Accepted counts are what the file says: documents and tokens sum without wrapping
    // where corpus-stats adds them.
    (void)(m.documents_train + m.documents_val);
  } catch (const Error&) {
  }
  return 0;
}
