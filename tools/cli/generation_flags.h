// Flags shared by the commands that generate text (generate, chat): sampling, length, threads,
// precision; and the text streaming they share.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {

struct GenerationFlags {
  int64_t n_predict = 64;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  std::string dtype = "f32";

  void add_to(CLI::App* sub);
  // Validated GenerateOptions (n_predict, sampling).
  Result<GenerateOptions> options() const;
  int thread_count() const;
};

}  // namespace moepp::cli
