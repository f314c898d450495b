// Library errors name the option field they reject ("val_fraction: 1.5 outside [0, 1)", "…
// `format`"); on the command line that field is a flag. with_flag_names rewrites a message's
// leading field name and every backquoted one to the flag ("--val-fraction: 1.5 outside
// [0, 1)"); a message naming no field passes unchanged. The one field → flag table of the binary.
#pragma once
#include <string>

namespace circuitlab::apps {

std::string with_flag_names(const std::string& message);

}  // namespace circuitlab::apps
