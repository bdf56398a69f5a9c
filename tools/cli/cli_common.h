// Helpers shared by the moepp subcommands: option parsing into engine types, errors, output.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/status.h"
#include "ops/precision.h"

namespace moepp::cli {

// "1,2,3" -> {1, 2, 3}; names the flag in the error.
Result<std::vector<int32_t>> parse_ids(const std::string& text, const char* flag);
Result<ComputeDType> parse_dtype(const std::string& text);
// Prints "moepp: <message>" to stderr and returns the exit code 1.
int fail(const Status& status);

// The most threads a command may ask for: more would exhaust the system's threads (an abort)
// before any work is done.
constexpr int kMaxThreads = 1024;
// Adds -t/--threads to `sub`: 0 (the default) is the machine's physical cores; a value below 0
// or above kMaxThreads is a parse error that names the flag.
void add_threads_option(CLI::App* sub, int* threads, const std::string& help = "Threads (default: physical cores)");
// The pool size a -t value asks for (0: ThreadPool::default_threads()).
int thread_count(int threads);
// A progress callback (LoadOptions::progress, ExportQuant::progress) for a command: a bar in MB
// on a terminal, once the work has taken a second (small models load without one).
std::function<void(int64_t done_bytes, int64_t total_bytes)> progress_bar(const std::string& label);

}  // namespace moepp::cli
