// circuitlab: one binary, subcommands per layer. Errors become one line and exit code 1.
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "apps/flag_names.h"
#include "core/error.h"

namespace circuitlab::apps {
void set_threads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}
}  // namespace circuitlab::apps

namespace {
// c10::Error messages span lines (with a C++ stack); keep the first.
std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"circuitlab: train, analyse and look inside small transformers and GPT-2"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  using namespace circuitlab::apps;
  register_data_commands(app);
  register_model_commands(app);
  register_train_commands(app);
  register_analysis_commands(app);
  register_attribution_commands(app);
  register_probe_commands(app);
  register_report_commands(app);
  register_server_commands(app);
  register_sae_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line like every other error (CLI11's own exit() prints two), usage errors exit 2.
    std::fprintf(stderr, "circuitlab: error: %s (see --help)\n", first_line(e.what()).c_str());
    return 2;
  } catch (const circuitlab::Error& e) {
    // Libraries name the option field they reject; the user typed its flag.
    std::fprintf(stderr, "circuitlab: error: %s\n", circuitlab::apps::with_flag_names(first_line(e.what())).c_str());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "circuitlab: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "circuitlab: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
