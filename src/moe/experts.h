// FFN experts on dispatched tokens: for each expert with work, gather its rows, fused
// gate+up, SiLU-gate, down. Outputs land at their slot's row, unweighted.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/dispatch.h"
#include "moe/moe_spec.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

// slot_out: [n_tokens * top_k, d_model]; rows of slots that went to FFN experts are written.
void run_ffn_experts(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w,
                     const Dispatch& dispatch, int top_k, const float* x /*[n_tokens, d_model]*/,
                     int64_t d_model, float* slot_out, Precision p);

}  // namespace moepp
