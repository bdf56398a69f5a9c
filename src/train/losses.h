// Training losses: next-token cross-entropy and the MoE++ heterogeneous load-balance loss
// (paper Eq. 7), with their gradients.
//
// Choices for the open points of docs/moepp-spec.md §4.1 (see docs/training.md):
//  - L_b = coef * sum_i eta_i f_i P_i per layer, eta_i = 1 for FFN experts and tau for zero,
//    copy and constant experts; no factor N unless LossOptions::scale_by_n_experts.
//  - f_i = (1/T) #{(token, slot) pairs that selected expert i}: both top-k slots count, so
//    sum_i f_i = top_k; counted at selection (before any capacity dropping and before the
//    zero-expert weight rule); f has no gradient.
//  - P_i = (1/T) sum_t p_t,i with p the softmax the router selects with: after the gating
//    residual and after the logit std normalisation (for top-k-then-softmax routers, the
//    softmax over all experts of the same normalised logits).
//  - T = every token of the micro-batch (also those whose label is ignored).
//  - Layers are summed (Megatron adds each layer's aux loss) or averaged (LayerAggregation).
#pragma once

#include <cstdint>

#include "moe/moe_spec.h"
#include "train/moe_grad.h"

namespace moepp {

enum class LayerAggregation { kSum, kMean };

struct LossOptions {
  float beta = 0.01f;  // weight of the load-balance loss
  float tau = 0.75f;   // eta of zero-computation experts
  LayerAggregation layers = LayerAggregation::kSum;
  bool scale_by_n_experts = false;  // Switch/DeepSpeed style N * sum f P
};

constexpr int32_t kIgnoreLabel = -100;

// Mean cross-entropy over rows whose target is not kIgnoreLabel. dlogits (out, may be null):
// grad_scale * dL/dlogits, [n, vocab]. n_valid (out): rows that count. Targets are checked
// by the caller.
double cross_entropy(const float* logits /*[n, vocab]*/, int64_t n, int64_t vocab,
                     const int32_t* targets /*[n]*/, float grad_scale, float* dlogits, int64_t* n_valid);

// One layer's L_b = (N?) sum_i eta_i f_i P_i from its routing. d_probs (out, may be null):
// coef * dL_b/dprobs, [n_tokens, n_experts].
double load_balance_loss(const MoeLayerSpec& spec, const MoeActivations& act, const LossOptions& options,
                         float coef, float* d_probs);

}  // namespace moepp
