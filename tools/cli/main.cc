// moepp: the command-line entry point. Subcommands live in cmd_*.cc and register themselves.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "platform/durable_file.h"
#include "platform/heap_tuning.h"

namespace moepp::cli {

std::vector<CommandEntry>& registered_commands() {
  static std::vector<CommandEntry> commands;  // built before main by static initialisers
  return commands;
}

bool register_command(int order, AddCommand add) {
  registered_commands().push_back({order, add});
  return true;
}

}  // namespace moepp::cli

int main(int argc, char** argv) {
  moepp::keep_freed_buffers_for_reuse();
  moepp::remove_partial_files_on_interrupt();  // ^C, SIGTERM or a hang-up during a write leaves no NAME.partial
  CLI::App app{"moepp: an engine for Mixture-of-Experts language models (MoE++, Mixtral, LLaMA-MoE)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moepp 0.1.0"));
  auto commands = moepp::cli::registered_commands();
  std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  std::map<CLI::App*, moepp::cli::Runner> runners;
  for (const auto& c : commands) {
    const size_t before = app.get_subcommands({}).size();
    moepp::cli::Runner run = c.add(app);
    runners[app.get_subcommands({})[before]] = std::move(run);
  }
  // CLI11 reports bad flags with exceptions; this is the one place they are caught.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners)
    if (sub->parsed()) return run();
  return 1;
}
