// The rows of a q8 KV cache (layers/kv_cache.h): a kv head's keys or values at one position,
// head_dim values in groups of kQuantGroup (32), each group int8 with one f32 scale, as q8
// weights are quantised (tensor/quantize.h) but rounding halves to even. Attention reads these
// rows as the f32 values they stand for, so a q8 cache moves half a bf16 cache's bytes (68 or 136
// bytes a row of 64 or 128 against 128 or 256) through the same f32 kernels.
#pragma once

#include <cstdint>

namespace moepp {

// Scales per row of n values: ceil(n / 32).
int64_t kv_scale_groups(int64_t n);

// One row: scales[g] = max|x| / 127 over group g (0 for an all-zero group) and q[i] =
// nearbyint(x[i] / scales[g]) clamped to [-127, 127], computed as x[i] * (1 / scale); NaN gives 0.
void quantize_kv_row(const float* x, int64_t n, int8_t* q /*[n]*/, float* scales /*[kv_scale_groups(n)]*/);

// `rows` consecutive rows (q n apart, scales kv_scale_groups(n) apart) as f32:
// out[r * n + i] = float(q[r * n + i]) * scales[r * groups + i / 32], one rounding each (the
// active kernel set's dequantize_kv_rows).
void dequantize_kv_rows(const int8_t* q, const float* scales, int64_t rows, int64_t n, float* out /*[rows, n]*/);

}  // namespace moepp
