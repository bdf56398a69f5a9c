// Runs a token sequence through the model and records every layer's routing plan per token:
// the input to route_stats and the routing report.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "eval/route_stats.h"
#include "models/model.h"
#include "platform/thread_pool.h"

namespace moepp {

// The tokens are cut into windows of `ctx` tokens, each its own sequence (so a long text never
// runs past the model's positions); windows are packed into batches of about max_batch_tokens.
// A layer with a smaller top_k than the largest pads its slots with expert -1, weight 0.
Result<RouteRecord> record_routes(ThreadPool& pool, const Model& model, const std::vector<int32_t>& ids, int64_t ctx,
                                  int64_t max_batch_tokens, bool progress);

}  // namespace moepp
