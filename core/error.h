// The one exception type user-facing failures travel in. Library code throws it with a
// one-line message naming the file/field and what was expected; apps/ prints it and exits 1.
// Not for programming errors (those stay TORCH_CHECK / assert).
#pragma once
#include <stdexcept>
#include <string>

namespace circuitlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error(msg). Kept out of line so call sites stay small.
[[noreturn]] void fail(const std::string& msg);

}  // namespace circuitlab
