// moepp: the command-line entry point. Subcommands live in cmd_*.cc.
#include <cstdio>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moepp: an engine for Mixture-of-Experts language models (MoE++, Mixtral, LLaMA-MoE)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moepp 0.1.0"));
  std::map<CLI::App*, moepp::cli::Runner> runners;
  auto add = [&](moepp::cli::Runner (*add_fn)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    moepp::cli::Runner r = add_fn(app);
    runners[app.get_subcommands({})[before]] = std::move(r);
  };
  add(moepp::cli::add_info_command);
  add(moepp::cli::add_logits_command);
  add(moepp::cli::add_generate_command);
  add(moepp::cli::add_chat_command);
  add(moepp::cli::add_tokenize_command);
  add(moepp::cli::add_detokenize_command);
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
