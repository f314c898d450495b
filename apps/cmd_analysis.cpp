// Subcommands of the analysis layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_analysis_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
