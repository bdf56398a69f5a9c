// The MoE layer's data flow, kept as four separate steps (docs/architecture.md).
#include "moe/moe_layer.h"

#include <vector>

#include "moe/combine.h"
#include "moe/dispatch.h"
#include "moe/experts.h"

namespace moepp {

void moe_forward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, float* x,
                 int64_t n_tokens, int64_t d_model, const float* prev_logits, float* raw_logits,
                 RoutingPlan* plan, float* y, Precision p) {
  route(pool, spec, w.router, x, n_tokens, prev_logits, raw_logits, plan, p);
  if (spec.input_scale != 1.0f)  // MoE++: after routing, before every expert kind
    for (int64_t i = 0; i < n_tokens * d_model; ++i) x[i] = p.round(x[i] * spec.input_scale);
  const Dispatch dispatch = dispatch_by_expert(spec, *plan);
  std::vector<float> slot_out(static_cast<size_t>(n_tokens * plan->top_k * d_model));
  run_ffn_experts(pool, spec, w, dispatch, plan->top_k, x, d_model, slot_out.data(), p);
  combine(spec, w, *plan, x, slot_out.data(), d_model, y, p);
}

}  // namespace moepp
