// Subcommands of the server layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_server_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
