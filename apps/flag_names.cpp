// The field → flag table (see flag_names.h).
#include "apps/flag_names.h"

#include <utility>
#include <vector>

namespace circuitlab::apps {

namespace {
// Option fields of the libraries' *Options structs, as their flags.
const std::vector<std::pair<std::string, std::string>>& flags() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"val_fraction", "--val-fraction"}, {"out_dir", "--out"},   {"out", "--out"},
      {"format", "--format"},             {"world_size", "--world-size"}, {"rank", "--rank"},
      {"master", "--master"},             {"runs", "--runs"},     {"gpt2", "--gpt2"},
      {"device", "--device"},             {"threads", "--threads"}, {"data_dir", "--data"},
      {"no_svg", "--no-svg"},             {"hook", "--hook"},     {"tokens", "--tokens"},
      {"batch_tokens", "--batch-tokens"}, {"context", "--context"}, {"hook_head_index", "--head"},
      {"position", "--position"},         {"against", "--against"}};  // DlaOptions (attribute)
  return table;
}
}  // namespace

std::string with_flag_names(const std::string& message) {
  std::string m = message;
  for (const auto& [field, flag] : flags()) {
    // A leading "<field>:" or "<field> ".
    if (m.size() > field.size() && m.compare(0, field.size(), field) == 0 &&
        (m[field.size()] == ':' || m[field.size()] == ' '))
      m = flag + m.substr(field.size());
    // Every "`<field>`".
    const std::string quoted = "`" + field + "`";
    for (size_t at = m.find(quoted); at != std::string::npos; at = m.find(quoted, at + flag.size()))
      m.replace(at, quoted.size(), flag);
  }
  return m;
}

}  // namespace circuitlab::apps
