// The generation loop for one sequence: prompt as one batch, then one token per step through
// the KV cache, streaming each token to a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "models/model.h"
#include "runtime/sampler.h"

namespace moepp {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  bool stop_at_eos = true;
  std::vector<int32_t> extra_stop_ids;  // e.g. a chat template's end-of-turn token
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prompt_seconds = 0;
  double generate_seconds = 0;
};

// on_token(id) is called for every generated token; returning false stops generation.
Result<std::vector<int32_t>> generate(ThreadPool& pool, const Model& model, const std::vector<int32_t>& prompt,
                                      const GenerateOptions& options,
                                      const std::function<bool(int32_t)>& on_token, GenerateStats* stats);

}  // namespace moepp
