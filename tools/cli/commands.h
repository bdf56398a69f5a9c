// The moepp subcommands: each registers its options on the CLI11 app and runs when chosen.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace moepp::cli {

// Registers a subcommand; the returned function runs it and gives the exit code.
using Runner = std::function<int()>;
Runner add_info_command(CLI::App& app);
Runner add_logits_command(CLI::App& app);
Runner add_generate_command(CLI::App& app);
Runner add_tokenize_command(CLI::App& app);
Runner add_detokenize_command(CLI::App& app);
Runner add_chat_command(CLI::App& app);

}  // namespace moepp::cli
