// Flags shared by the commands: how a model is loaded (precision, quantisation at load) and,
// for the commands that generate text (generate, chat), sampling, length and threads.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "eval/token_input.h"
#include "models/model.h"
#include "runtime/generator.h"
#include "runtime/speculative.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {

struct ModelFlags {
  std::string dtype = "f32";
  std::string weights, experts, rest;  // "", "q8", "q4" (empty: keep the compute dtype)
  std::string kv_cache;                 // "", "f32", "bf16", "q8" (empty: the compute dtype)

  void add_to(CLI::App* sub);
  Result<LoadOptions> load_options() const;
};

struct GenerationFlags {
  int64_t n_predict = 64;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  ModelFlags model;

  void add_to(CLI::App* sub);
  // Validated GenerateOptions (n_predict, sampling).
  Result<GenerateOptions> options() const;
  int thread_count() const;
};

// --draft / --draft-n / --draft-top-k of the commands that decode speculatively (generate, serve).
struct DraftFlags {
  std::string draft;  // "", a model directory, "self" or "ngram"
  int draft_n = 4;
  int draft_top_k = 1;

  void add_to(CLI::App* sub);
  bool enabled() const { return !draft.empty(); }
  // A maker of drafters (one per sequence). A draft model is loaded once into *holder, which
  // must outlive the drafters; its tokenizer must be the target's. sampling: the drafts' own
  // (the server passes greedy: its acceptance treats drafts as one-hot).
  Result<std::function<std::unique_ptr<Drafter>()>> factory(const Model& target, const Tokenizer* tokenizer,
                                                            const LoadOptions& load, ThreadPool& pool,
                                                            const SamplingParams& sampling, std::unique_ptr<Model>* holder) const;
};

// -f / --ids / --ids-file / --no-bos of the commands that read a text or token ids.
void add_token_input_flags(CLI::App* sub, TokenInput* input);

// "q8", "q4", "none" or "" (none); `flag` names the option in the error.
Result<WeightQuant> parse_quant(const std::string& text, const char* flag);
// --kv-cache: "f32", "bf16", "q8", or "" / "auto" (unset: the compute dtype's).
Result<std::optional<KvStorage>> parse_kv_cache(const std::string& text);

}  // namespace moepp::cli
