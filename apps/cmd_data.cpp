// Subcommands of the data layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_data_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
