// Subcommands of the model layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_model_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
