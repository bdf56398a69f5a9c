// The MoE layer's data flow, kept as four separate steps (docs/architecture.md).
#include "moe/moe_layer.h"

#include <memory>

#include "moe/combine.h"
#include "moe/dispatch.h"
#include "moe/experts.h"

namespace moepp {

void moe_forward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, float* x,
                 int64_t n_tokens, int64_t d_model, const float* prev_logits, float* raw_logits,
                 RoutingPlan* plan, float* y, Precision p) {
  route(pool, spec, w.router, x, n_tokens, prev_logits, raw_logits, plan, p);
  if (spec.input_scale != 1.0f)  // MoE++: after routing, before every expert kind
    parallel_ranges(pool, n_tokens, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t i = t0 * d_model; i < t1 * d_model; ++i) x[i] = p.round(x[i] * spec.input_scale);
    });
  const Dispatch dispatch = dispatch_by_expert(spec, *plan);
  // [n_tokens * top_k, d_model]: only FFN experts' slots are written, and only they are read.
  const auto slot_out = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n_tokens * plan->top_k * d_model));
  run_ffn_experts(pool, spec, w, dispatch, plan->top_k, x, d_model, slot_out.get(), p);
  combine(pool, spec, w, *plan, x, slot_out.get(), d_model, y, p);
}

}  // namespace moepp
