// Subcommands of the report layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_report_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
