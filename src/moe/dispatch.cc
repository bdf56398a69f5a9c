// Counting sort by expert; within an expert, slots stay in token order (stable).
#include "moe/dispatch.h"

namespace moepp {

Dispatch dispatch_by_expert(const MoeLayerSpec& spec, const RoutingPlan& plan) {
  const int64_t n_experts = spec.n_experts();
  Dispatch d;
  d.offsets.assign(static_cast<size_t>(n_experts + 1), 0);
  const int64_t n_slots = plan.n_tokens * plan.top_k;
  for (int64_t s = 0; s < n_slots; ++s) {
    const int32_t e = plan.experts[s];
    if (spec.kinds[e] == ExpertKind::kFfn) ++d.offsets[e + 1];
  }
  for (int64_t e = 0; e < n_experts; ++e) d.offsets[e + 1] += d.offsets[e];
  d.slots.resize(static_cast<size_t>(d.offsets[n_experts]));
  std::vector<int32_t> fill(d.offsets.begin(), d.offsets.end() - 1);
  for (int64_t s = 0; s < n_slots; ++s) {
    const int32_t e = plan.experts[s];
    if (spec.kinds[e] == ExpertKind::kFfn) d.slots[fill[e]++] = static_cast<int32_t>(s);
  }
  return d;
}

}  // namespace moepp
