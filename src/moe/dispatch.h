// Dispatch: counting sort of (token, slot) pairs by FFN expert into contiguous runs, so each
// expert sees its tokens as one block. Zero-computation experts are never dispatched.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe_spec.h"
#include "moe/routing.h"

namespace moepp {

struct Dispatch {
  std::vector<int32_t> offsets;  // [n_experts + 1]: run of expert e is [offsets[e], offsets[e+1])
  std::vector<int32_t> slots;    // [n_ffn_slots]: flat slot index t*top_k + j, grouped by expert
};

Dispatch dispatch_by_expert(const MoeLayerSpec& spec, const RoutingPlan& plan);

}  // namespace moepp
