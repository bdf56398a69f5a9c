// The MoE / MoE++ layer for training: router (1- or 2-layer, gating residual, logit std
// normalisation, softmax, top-k, zero-expert rule, renormalisation as src/moe/routing.cc does),
// x input_scale, SwiGLU FFN experts, constant / copy / zero experts, weighted combine; the
// forward keeps its activations and the backward treats the top-k choice as a constant
// (gradients reach the router through the selected weights, as in PyTorch).
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe_spec.h"
#include "platform/thread_pool.h"

namespace moepp {

// Heterogeneous expert capacity (paper Eq. 8), off by default (dropless, as inference).
// With T' = tokens (or token-slots when per_slot), capacity = ceil(factor * tau * T' / D) for FFN
// experts and ceil(factor * T' / D) for zero/copy/constant experts, D = tau N_ffn + N_zc.
// Slots beyond an expert's capacity are dropped: they keep their routing weight but add
// nothing (the residual carries the token). Priority: every token's first choice before any
// second choice, then by token index (GShard / DeepSpeed order).
struct CapacityOptions {
  float factor = 0.0f;  // gamma; 0 = no capacity limit
  float tau = 0.75f;    // the load-balance tau (the trainer passes LossOptions::tau)
  bool per_slot = false;
};

// Pointers into the flat parameter (or gradient) buffer; null where the spec has no tensor.
template <typename T>
struct MoeTensors {
  T* router_w1 = nullptr;  // [n_experts or hidden, d]
  T* router_w2 = nullptr;  // MLP: [n_experts, hidden]
  T* gate_map = nullptr;   // [n_experts, n_experts]
  std::vector<T*> gate_up, down, constant_gate, constant_value;  // [n_experts] each
};
using MoeWeightsF32 = MoeTensors<const float>;
using MoeGradsF32 = MoeTensors<float>;

struct MoeActivations {
  int64_t n_tokens = 0;
  std::vector<float> router_hidden;  // [n_tokens, hidden] tanh output (MLP router)
  std::vector<float> raw_logits;     // [n_tokens, n_experts] incl. gating residual (passed on)
  std::vector<float> std_scale;      // [n_tokens] std(logits)/lambda, 1 without normalisation
  std::vector<float> probs;          // [n_tokens, n_experts] softmax of the normalised logits
  std::vector<int32_t> experts;      // [n_tokens, top_k] selection, best first
  std::vector<float> weights;        // [n_tokens, top_k] applied to the expert outputs
  std::vector<uint8_t> kept;         // [n_tokens, top_k] 0 where capacity dropped the slot
  int64_t n_dropped = 0;
  std::vector<float> slot_out;       // [n_tokens, top_k, d_model] expert outputs per slot
  std::vector<float> const_alpha;    // [n_tokens, top_k, 2] constant experts' softmax
  std::vector<float> scaled_x;       // [n_tokens, d_model] expert input (x * input_scale)
  std::vector<std::vector<int64_t>> ffn_slots;  // per expert: slots t*top_k+j routed to it
  std::vector<std::vector<float>> ffn_hidden;   // per FFN expert: [m, 2*d_expert] gate|up
  std::vector<std::vector<float>> ffn_act;      // per FFN expert: [m, d_expert] silu(gate)*up
};

// prev_logits: [n_tokens, n_experts] raw logits of the previous layer, or null.
// y (out): [n_tokens, d_model].
void moe_train_forward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeightsF32& w,
                       const float* x /*[n_tokens, d_model]*/, int64_t n_tokens, int64_t d_model,
                       const float* prev_logits, const CapacityOptions& capacity, MoeActivations* act,
                       float* y);

// dy: [n_tokens, d_model]; d_raw: [n_tokens, n_experts] gradient reaching this layer's raw
// logits from the next layer's gating residual (or null); d_probs: [n_tokens, n_experts]
// gradient of auxiliary losses w.r.t. probs (or null). Accumulates dx [n_tokens, d_model],
// d_prev [n_tokens, n_experts] (when prev_logits is given) and the weight gradients.
void moe_train_backward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeightsF32& w,
                        const float* x, int64_t n_tokens, int64_t d_model, const float* prev_logits,
                        const MoeActivations& act, const float* dy, const float* d_raw,
                        const float* d_probs, float* dx, float* d_prev, const MoeGradsF32& g);

}  // namespace moepp
