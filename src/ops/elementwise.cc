// RMSNorm, softmax and RoPE. The per-element passes are cloned per SIMD width
// (platform/simd_clones.h): elements are independent, and the one sum (RMSNorm's, in double)
// keeps a fixed order of 8 lanes, so every clone gives the same bits.
#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/dot_kernels.h"
#include "platform/simd_clones.h"

namespace moepp {
namespace {

// Rows per pool task of the row-wise passes: a task's rows stay in L1/L2 between the add and the norm.
constexpr int64_t kNormRowsPerTask = 16;

}  // namespace

MOEPP_SIMD_CLONES
void rms_norm(const float* x, int64_t n, int64_t d, const Weight& weight, float eps, float* y, Precision p) {
  thread_local std::vector<float> w;  // [d]: the weight as f32, read once per call, not per row
  w.resize(static_cast<size_t>(std::max(d, weight.cols)));
  weight.row_to_f32(0, w.data());
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float* yi = y + i * d;
    // The mean of squares accumulates in double (each square exact, the sum's rounding far below
    // an f32 step). 8 lanes in a fixed order: every clone vectorises it with the same bits, and
    // decode's serial path loses one long chain of dependent adds.
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (int k = 0; k < 8; ++k) lane[k] += static_cast<double>(xi[j + k]) * xi[j + k];
    for (; j < d; ++j) lane[0] += static_cast<double>(xi[j]) * xi[j];
    const double ss = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    const float var = static_cast<float>(ss / static_cast<double>(d));
    const float r = 1.0f / std::sqrt(var + eps);
    for (int64_t j = 0; j < d; ++j) yi[j] = p.round(w[j] * p.round(xi[j] * r));
  }
}

void rms_norm(ThreadPool& pool, const float* x, int64_t n, int64_t d, const Weight& weight, float eps, float* y,
              Precision p) {
  parallel_ranges(pool, n, kNormRowsPerTask, [&](int64_t r0, int64_t r1) {
    rms_norm(x + r0 * d, r1 - r0, d, weight, eps, y + r0 * d, p);
  });
}

void add_rms_norm(ThreadPool& pool, float* h, const float* branch, int64_t n, int64_t d, const Weight& weight,
                  float eps, float* y, Precision p) {
  parallel_ranges(pool, n, kNormRowsPerTask, [&](int64_t r0, int64_t r1) {
    add_inplace(h + r0 * d, branch + r0 * d, (r1 - r0) * d, p);
    rms_norm(h + r0 * d, r1 - r0, d, weight, eps, y + r0 * d, p);
  });
}

MOEPP_SIMD_CLONES
void add_inplace(float* h, const float* branch, int64_t n, Precision p) {
  if (!p.bf16()) {
    for (int64_t i = 0; i < n; ++i) h[i] += branch[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) h[i] = round_bf16(h[i] + branch[i]);
}

MOEPP_SIMD_CLONES
void add_weighted(float* y, const float* x, float weight, int64_t n, Precision p) {
  if (!p.bf16()) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i] * weight;
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(y[i] + round_bf16(x[i] * weight));
}

namespace {

// s = round(round(s) / divisor) (kBf16) or s / divisor, as s * factor (factor = 1 / divisor) when
// kMultiply. Inlined into each SIMD clone with the branches resolved, so the loop vectorises.
template <bool kBf16, bool kMultiply>
[[gnu::always_inline]] inline void scale_scores(float* s, int64_t n, float divisor, float factor) {
  for (int64_t i = 0; i < n; ++i) {
    float v = s[i];
    if constexpr (kBf16) v = round_bf16(v);
    v = kMultiply ? v * factor : v / divisor;
    s[i] = kBf16 ? round_bf16(v) : v;
  }
}

// The largest of x[0 .. n) (-inf for none): 32 independent maxima, then the largest of them;
// exact in any order, up to the sign of a zero maximum, which no caller sees (x - 0 and x - (-0)
// differ only for x = -0, and the exponential of either zero is 1). The lanes are GCC vectors:
// as an array of floats GCC 12 kept them scalar (vmaxss, one compare a score), and four of them
// keep four compares in flight. m < v ? v : m is maxps(v, m) lane by lane, which keeps m where v
// is NaN, as std::max(m, v) does.
[[gnu::always_inline]] inline float max_of(const float* x, int64_t n) {
  using Lanes8 = float __attribute__((vector_size(32)));
  constexpr Lanes8 kNone = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  Lanes8 m[4] = {kNone, kNone, kNone, kNone};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) {
      Lanes8 v;
      std::memcpy(&v, x + i + 8 * k, sizeof(v));
      m[k] = m[k] < v ? v : m[k];
    }
  float largest = -INFINITY;
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 8; ++j) largest = std::max(largest, m[k][j]);
  for (; i < n; ++i) largest = std::max(largest, x[i]);
  return largest;
}

// Softmax's first steps, shared by softmax_inplace and attention_probabilities: x[i] = exp(x[i] -
// max) in place, and 1 / their sum returned. A fully masked row (no score above -inf) is zeroed
// and gives 0, so that scaling it keeps zeros (PyTorch gives NaN there).
[[gnu::always_inline]] inline float exponentials(float* x, int64_t n) {
  const float mx = max_of(x, n);
  if (mx == -INFINITY) {
    std::fill(x, x + n, 0.0f);
    return 0.0f;
  }
  return static_cast<float>(1.0 / kernels::active_kernels().exp_sum(x, mx, x, n));
}

}  // namespace

MOEPP_SIMD_CLONES
void attention_probabilities(float* s, int64_t n, float divisor, Precision p) {
  // x / d and x * (1 / d) round the same exact quotient when d is a power of two (sqrt(head_dim)
  // for head_dim 64 or 256), and the multiply is several times cheaper than a division.
  int exponent = 0;
  const float factor = 1.0f / divisor;
  const bool power_of_two = std::frexp(divisor, &exponent) == 0.5f && std::isfinite(factor);
  if (p.bf16()) {
    if (power_of_two) scale_scores<true, true>(s, n, divisor, factor);
    else scale_scores<true, false>(s, n, divisor, factor);
  } else {
    if (power_of_two) scale_scores<false, true>(s, n, divisor, factor);
    else scale_scores<false, false>(s, n, divisor, factor);
  }
  // Exponentials and their sum, then normalised and rounded in one pass.
  const float inv = exponentials(s, n);
  if (!p.bf16()) {
    for (int64_t k = 0; k < n; ++k) s[k] *= inv;
    return;
  }
  for (int64_t k = 0; k < n; ++k) s[k] = round_bf16(s[k] * inv);
}

MOEPP_SIMD_CLONES
void constant_expert_output(const float* x, const float* v, float a1, float a2, int64_t n, float* out, Precision p) {
  if (!p.bf16()) {
    for (int64_t i = 0; i < n; ++i) out[i] = a1 * x[i] + a2 * v[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = round_bf16(round_bf16(a1 * x[i]) + round_bf16(a2 * v[i]));
}

MOEPP_SIMD_CLONES
void softmax_inplace(float* x, int64_t n) {
  const float inv = exponentials(x, n);
  for (int64_t k = 0; k < n; ++k) x[k] *= inv;
}

MOEPP_SIMD_CLONES
void silu_times(const float* gate, const float* up, int64_t n, float* out, Precision p) {
  kernels::active_kernels().silu(gate, out, n);  // silu(gate), as silu() computes it
  if (!p.bf16()) {
    for (int64_t i = 0; i < n; ++i) out[i] *= up[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = round_bf16(round_bf16(out[i]) * up[i]);
}

void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t head_dim, float* cos_sin, Precision p) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cos_sin[i] = p.round(std::cos(angle));
    cos_sin[half + i] = p.round(std::sin(angle));
  }
}

MOEPP_SIMD_CLONES
void rope_inplace(float* v, int64_t head_dim, const float* cos_sin, Precision p) {
  const int64_t half = head_dim / 2;
  // q*cos + rotate_half(q)*sin, each product and the sum rounded like separate torch ops. Two
  // loops, so that neither has a branch and both vectorise.
  if (!p.bf16()) {
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[i], s = cos_sin[half + i], a = v[i], b = v[i + half];
      v[i] = a * c + -b * s;
      v[i + half] = b * c + a * s;
    }
    return;
  }
  for (int64_t i = 0; i < half; ++i) {
    const float c = cos_sin[i], s = cos_sin[half + i], a = v[i], b = v[i + half];
    v[i] = round_bf16(round_bf16(a * c) + round_bf16(-b * s));
    v[i + half] = round_bf16(round_bf16(b * c) + round_bf16(a * s));
  }
}

}  // namespace moepp
