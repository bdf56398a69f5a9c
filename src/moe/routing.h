// Router: from normed hidden states to a routing plan (which experts, what weights).
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe_spec.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

struct RoutingPlan {
  int64_t n_tokens = 0;
  int top_k = 0;
  std::vector<int32_t> experts;  // [n_tokens, top_k], in selection order (best first)
  std::vector<float> weights;    // [n_tokens, top_k], as applied to expert outputs
  // [n_tokens, n_experts] the router's probabilities over every expert: the softmax of the
  // logits it selects from (after the gating residual and the std normalisation). What
  // routing analyses call router scores; the weights above are derived from them.
  std::vector<float> scores;
};

// Indices of the k largest scores, best first; exact ties go to the lower index (n <= kMaxExperts).
void top_k_indices(const float* scores, int64_t n, int k, int32_t* out);
// Sample standard deviation (divisor n-1, PyTorch's default), accumulated in double.
float sample_std(const float* x, int64_t n);

// Computes router logits, applies the gating residual, scores, selects and weights.
// prev_logits: [n_tokens, n_experts] raw logits of the previous MoE layer, or null (layer 0).
// raw_logits (out): [n_tokens, n_experts] the logits passed on as the next layer's residual.
void route(ThreadPool& pool, const MoeLayerSpec& spec, const RouterWeights& w,
           const float* x /*[n_tokens, d_model]*/, int64_t n_tokens,
           const float* prev_logits, float* raw_logits, RoutingPlan* plan, Precision p);

}  // namespace moepp
