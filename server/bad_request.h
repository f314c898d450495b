// What a lab request may be and what it gets when it is wrong: the size bounds every request
// is held to, and BadRequest (an HTTP status and a one-line message). No LibTorch here.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace circuitlab::server {

// A request the client got wrong: HTTP status (400, 404, 413) and a one-line message.
class BadRequest : public std::runtime_error {
 public:
  BadRequest(int status, const std::string& msg) : std::runtime_error(msg), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};
[[noreturn]] void bad(const std::string& msg, int status = 400);
// A 4xx in the strict reader's message shape (core/json_fields field_message):
// "request: field 'feature.index' is out of range ...".
[[noreturn]] void bad_field(const std::string& key, const std::string& problem, int status = 400);

// Size bounds that keep every request bounded in time and memory.
struct LabLimits {
  int max_text_bytes = 20000;       // any prompt field
  int max_new_tokens = 200;         // steer / generate
  int max_top_k = 50;               // predictions per position
  int64_t max_attention_values = 8'000'000;  // L*H*T*T returned by `run`
  int max_patch_tokens = 128;
  int max_search_results = 500;     // feature search
  int64_t max_patch_cells = 20000;  // patched forward passes in one `patch`
};

}  // namespace circuitlab::server
