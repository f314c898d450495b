// Subcommands of the train layer (see apps/commands.h).
#include "apps/commands.h"

namespace circuitlab::apps {

void register_train_commands(CLI::App& app) { (void)app; }

}  // namespace circuitlab::apps
