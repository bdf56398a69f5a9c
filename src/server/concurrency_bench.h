// Serving throughput: N streams submitted at once to the continuous-batching engine (the
// server's path without HTTP). Aggregate generated tokens/s should grow with N until compute
// bound, because a batched decode step reads each chosen expert's weights once for all streams.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "base/status.h"
#include "models/model.h"

namespace moepp::server {

struct ConcurrencyRow {
  int streams = 0;
  int64_t prompt_tokens = 0;   // per stream
  int64_t gen_tokens = 0;      // per stream
  double agg_tok_s = 0;        // generated tokens of all streams / wall time
  double stream_tok_s = 0;     // mean per-stream decode speed after its first token
  double decode_tok_s = 0;     // sum of the per-stream decode speeds: throughput once all are decoding
  double ttft_mean_ms = 0, ttft_max_ms = 0;  // time to first token
};

Status run_concurrency_bench(const Model& model, ThreadPool& pool, const std::vector<int64_t>& streams,
                             int64_t prompt_tokens, int64_t gen_tokens, uint64_t seed,
                             const std::function<void(const ConcurrencyRow&)>& sink);

}  // namespace moepp::server
