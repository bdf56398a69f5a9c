// One MoE layer forward: router -> dispatch -> experts -> combine.
#pragma once

#include <cstdint>

#include "moe/moe_spec.h"
#include "moe/routing.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

// x: [n_tokens, d_model] normed hidden states (modified: input scaling is applied in place).
// prev_logits/raw_logits: gating residual in and out ([n_tokens, n_experts]); y: [n_tokens, d_model].
void moe_forward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, float* x,
                 int64_t n_tokens, int64_t d_model, const float* prev_logits, float* raw_logits,
                 RoutingPlan* plan, float* y, Precision p);

}  // namespace moepp
