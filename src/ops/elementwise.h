// Row-wise and element-wise ops of the decoder, with the rounding points of the PyTorch
// reference (see docs/moepp-spec.md §1.4 and checkpoint-formats.md §1.5-§1.7).
#pragma once

#include <cstdint>

#include "ops/exp_f32.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

// HF LlamaRMSNorm: normalise in f32, round to the activation dtype, then multiply by weight.
void rms_norm(const float* x /*[n, d]*/, int64_t n, int64_t d, const Weight& weight /*[1, d]*/,
              float eps, float* y /*[n, d]*/, Precision p);
// The same with the rows split over the pool (rows are independent: the same bits).
void rms_norm(ThreadPool& pool, const float* x /*[n, d]*/, int64_t n, int64_t d, const Weight& weight /*[1, d]*/,
              float eps, float* y /*[n, d]*/, Precision p);

// h = round(h + branch) on each row (the residual add), then y = rms_norm(h): one pass over the
// rows split over the pool, the same bits as the two steps apart.
void add_rms_norm(ThreadPool& pool, float* h /*[n, d]*/, const float* branch /*[n, d]*/, int64_t n, int64_t d,
                  const Weight& weight /*[1, d]*/, float eps, float* y /*[n, d]*/, Precision p);

// h[i] = round(h[i] + branch[i]): a residual add in the activation dtype.
void add_inplace(float* h, const float* branch, int64_t n, Precision p);
// y[i] = round(y[i] + round(x[i] * weight)): one weighted term of a sum, as torch's y += x * w.
void add_weighted(float* y, const float* x, float weight, int64_t n, Precision p);
// out[i] = round(round(a1 * x[i]) + round(a2 * v[i])): an MoE++ constant expert's output, its
// token's x and its learned vector v mixed by the weights [a1, a2] of its own softmax.
void constant_expert_output(const float* x, const float* v, float a1, float a2, int64_t n, float* out, Precision p);

// In-place softmax over n values, computed in f32 with exp_f32 and a double sum (the caller
// rounds if needed). The same bits with every kernel set.
void softmax_inplace(float* x, int64_t n);

// One query's attention probabilities from its scores, as HF's eager attention computes them:
// s = round(round(s) / divisor), softmax_inplace(s), s = round(s), rounding to the activation
// dtype; the same bits as those three steps, in four passes over s instead of five.
void attention_probabilities(float* s, int64_t n, float divisor, Precision p);

// out[i] = round(round(silu(gate[i])) * up[i]): the experts' SwiGLU product with HF's rounding
// points. The same values as that loop; silu through the kernel set's silu, then a pass that
// vectorises. out must not overlap gate or up.
void silu_times(const float* gate, const float* up, int64_t n, float* out, Precision p);

// RoPE's cos and sin at `pos` for the head_dim/2 frequencies of inv_freq, computed in f32 and
// rounded to the activation dtype, as HF does: cos_sin = [cos.. (head_dim/2), sin.. (head_dim/2)].
// One table per position serves every head of every layer.
void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t head_dim, float* cos_sin /*[head_dim]*/, Precision p);

// Rotate-half (GPT-NeoX) RoPE on one head vector [head_dim], in place, with the table above.
void rope_inplace(float* v, int64_t head_dim, const float* cos_sin /*[head_dim]*/, Precision p);

}  // namespace moepp
