// RMSNorm and rotate-half RoPE, forward and backward, fp32 (HF LlamaRMSNorm / rotary math).
#pragma once

#include <cstdint>

namespace moepp {

// y = w * x * r with r = 1/sqrt(mean(x^2) + eps); inv_rms (out) keeps r per row for backward.
void rms_norm_forward(const float* x /*[n, d]*/, int64_t n, int64_t d, const float* w /*[d]*/, float eps,
                      float* y /*[n, d]*/, float* inv_rms /*[n]*/);

// dx += dL/dx, dw += dL/dw, given dy.
void rms_norm_backward(const float* x /*[n, d]*/, const float* inv_rms /*[n]*/, int64_t n, int64_t d,
                       const float* w /*[d]*/, const float* dy /*[n, d]*/, float* dx /*[n, d]*/,
                       float* dw /*[d]*/);

// In place on one head vector [head_dim] at position pos; inverse = true applies the transpose
// rotation (the backward of a rotation is its inverse).
void rope_rotate(float* v, int64_t head_dim, int64_t pos, const float* inv_freq /*[head_dim/2]*/, bool inverse);

}  // namespace moepp
