// Combine: y[token] = sum over its slots of weight * expert output, in ascending expert index
// (the reference's accumulation order). Zero, copy and constant experts are evaluated here.
#pragma once

#include <cstdint>

#include "moe/moe_spec.h"
#include "moe/routing.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

// x: [n_tokens, d_model] expert input (after any input scaling); slot_out: FFN outputs per slot;
// y (out): [n_tokens, d_model]. Tokens are split over the pool.
void combine(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, const RoutingPlan& plan,
             const float* x, const float* slot_out, int64_t d_model, float* y, Precision p);

}  // namespace moepp
