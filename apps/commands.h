// The `circuitlab` binary's subcommands, one registrar per layer (apps/cmd_<layer>.cpp).
// A subcommand's callback throws circuitlab::Error for bad input; main() turns it into one
// line on stderr and exit code 1.
#pragma once
#include <CLI/CLI.hpp>

namespace circuitlab::apps {

void register_data_commands(CLI::App& app);      // encode, decode, prepare, corpus-stats
void register_model_commands(CLI::App& app);     // forward, inspect, export, fetch-gpt2
void register_train_commands(CLI::App& app);     // train
void register_analysis_commands(CLI::App& app);  // analyze
void register_attribution_commands(CLI::App& app);  // attribute
void register_probe_commands(CLI::App& app);        // probe train
void register_report_commands(CLI::App& app);    // report
void register_server_commands(CLI::App& app);    // serve
void register_sae_commands(CLI::App& app);       // sae train|encode|eval|synth

// Applies an explicit intra-op thread count (0: keep the default of 1 on this machine).
void set_threads(int threads);

}  // namespace circuitlab::apps
