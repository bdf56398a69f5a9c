// `--zc-share P`: biases MoE++ routers so that a share P of the (token, slot) pairs goes to
// zero-computation experts (zero, copy, constant). The routers are bias-free Linears, so the
// bias enters through a constant input feature: hidden dimension kBiasFeature carries a
// constant, router rows of zero-computation experts get weight b in that column and FFN rows
// get 0, which adds b x feature to their logits. Top-k is rank-based, so the share grows
// monotonically with b; b is found by bisection against the measured share.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "models/model.h"
#include "moe/moe_spec.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

constexpr int64_t kBiasFeature = 0;

struct ZcCalibration {
  std::vector<float> bias;  // per layer (one entry for a single MoE layer)
  double share = 0;         // measured on the calibration tokens
};

// --- One MoE layer on given hidden states (the expert-layer comparison). ---

// Sets column kBiasFeature of the router's first matrix: `bias` for zero-computation experts,
// 0 for FFN experts. The router must be a Linear with f32 or bf16 weights that this process owns.
Status set_router_bias(const MoeLayerSpec& spec, MoeLayerWeights* w, float bias);

// [n, d] random hidden states as an MoE layer gets them after RMSNorm: unit variance, rounded to
// bf16 values in a bf16 forward (as the norm's output is there, so the experts take the kernels a
// model's layer takes), column kBiasFeature set to 1.
std::vector<float> normed_hidden_states(int64_t n, int64_t d, uint64_t seed, Precision prec);

// x: [n_tokens, d_model] hidden states whose column kBiasFeature the caller set to a constant.
// Finds the bias that sends `share` of the slots to zero-computation experts.
Result<ZcCalibration> calibrate_layer_bias(ThreadPool& pool, const MoeLayerSpec& spec, MoeLayerWeights* w,
                                           const float* x, int64_t n_tokens, int64_t d_model, double share);

// --- A whole random-weight model. ---

// Makes dimension kBiasFeature of the residual stream a constant: embedding column = 1.0 for
// every token, attention does not see it (input norm weight 0 there), the gating residual does
// not carry the bias into FFN experts' logits (gate_map columns of zero-computation experts 0).
// The model must be built by Model::random (owned weights).
Status prepare_model_for_zc_bias(Model* model);

// Per-layer bisection against the shares measured by full forwards over `tokens` (one
// sequence from position 0). Calibrate on the tokens of the test itself: with random weights
// the feature's weight relative to the rest of the hidden state depends on the position (early
// positions attend to few keys), so a bias found on other positions routes a different share.
// Decoding the same tokens one by one routes as the prefill does (the model is causal).
Result<ZcCalibration> calibrate_model_bias(ThreadPool& pool, Model* model, double share,
                                           const std::vector<int32_t>& tokens);

}  // namespace moepp
