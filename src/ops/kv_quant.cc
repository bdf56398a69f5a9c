// q8 KV cache rows: quantised once when a token's keys and values are stored, widened to f32 in
// chunks that stay in L1 when attention reads them.
#include "ops/kv_quant.h"

#include <algorithm>
#include <cmath>

#include "ops/dot_kernels.h"
#include "platform/simd_clones.h"
#include "tensor/weight.h"

namespace moepp {

int64_t kv_scale_groups(int64_t n) { return (n + kQuantGroup - 1) / kQuantGroup; }

MOEPP_SIMD_CLONES
void quantize_kv_row(const float* x, int64_t n, int8_t* q, float* scales) {
  // v + 1.5 * 2^23 - 1.5 * 2^23 rounds |v| <= 127 to the nearest integer, halves to even, in a form
  // the compiler vectorises (nearbyint is a library call: every prefill token stores 2 rows a kv head
  // and layer).
  constexpr float kRound = 0x1.8p23f;
  for (int64_t g = 0; g * kQuantGroup < n; ++g) {
    const int64_t c0 = g * kQuantGroup, c1 = std::min(n, c0 + kQuantGroup);
    float amax = 0.0f;
    for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[c]));
    const float s = amax / 127.0f;
    scales[g] = s;
    const float inv = s > 0.0f ? 1.0f / s : 0.0f;
    for (int64_t c = c0; c < c1; ++c) {
      // Clamped as a float first, NaN to 0 (x < y is false for NaN): no float outside int8's range
      // reaches the cast.
      const float v = x[c] * inv;
      const float clamped = v > -127.0f ? (v < 127.0f ? v : 127.0f) : (v <= -127.0f ? -127.0f : 0.0f);
      q[c] = static_cast<int8_t>((clamped + kRound) - kRound);
    }
  }
}

void dequantize_kv_rows(const int8_t* q, const float* scales, int64_t rows, int64_t n, float* out) {
  kernels::active_kernels().dequantize_kv_rows(q, scales, rows, n, out);
}

}  // namespace moepp
