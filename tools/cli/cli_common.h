// Helpers shared by the moepp subcommands: option parsing into engine types, errors, output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "ops/precision.h"

namespace moepp::cli {

// "1,2,3" -> {1, 2, 3}; names the flag in the error.
Result<std::vector<int32_t>> parse_ids(const std::string& text, const char* flag);
Result<ComputeDType> parse_dtype(const std::string& text);
// Writes bytes to `path` via a temporary file and a rename, so a failed write never leaves a
// truncated file where a good one was.
Status write_file_atomic(const std::string& path, const void* data, size_t size);
// Prints "moepp: <message>" to stderr and returns the exit code 1.
int fail(const Status& status);

}  // namespace moepp::cli
