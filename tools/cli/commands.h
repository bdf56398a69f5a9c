// The moepp subcommands: each cmd_*.cc registers itself with MOEPP_REGISTER_COMMAND, so adding
// a command touches no central list. A command adds its options to the CLI11 app and returns
// the function that runs it.
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace moepp::cli {

using Runner = std::function<int()>;  // runs the parsed command, returns the exit code
using AddCommand = Runner (*)(CLI::App& app);

struct CommandEntry {
  int order;  // position in --help
  AddCommand add;
};

bool register_command(int order, AddCommand add);
std::vector<CommandEntry>& registered_commands();

}  // namespace moepp::cli

#define MOEPP_REGISTER_COMMAND(order, add_fn) \
  static const bool moepp_registered_##add_fn = ::moepp::cli::register_command(order, add_fn)
