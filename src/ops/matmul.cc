// Portable matmul. Speed comes later from SIMD kernels with run-time dispatch (issue 4);
// this version keeps one weight row hot across all M input rows and splits N over threads.
#include "ops/matmul.h"

#include <algorithm>

namespace moepp {
namespace {

// 8 independent partial sums so the compiler can vectorise without reassociating.
__attribute__((target_clones("arch=x86-64-v3", "default")))
float dot_f32(const float* x, const float* w, int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * w[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < k; ++i) s += x[i] * w[i];
  return s;
}

__attribute__((target_clones("arch=x86-64-v3", "default")))
float dot_bf16(const float* x, const uint16_t* w, int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * bf16_to_f32(w[i + j]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < k; ++i) s += x[i] * bf16_to_f32(w[i]);
  return s;
}

// Group-quantised rows: per group of 32, an integer-valued dot product times the group scale;
// the last group of a row may be shorter.
__attribute__((target_clones("arch=x86-64-v3", "default")))
float dot_q8(const float* x, const int8_t* q, const float* scales, int64_t k) {
  float total = 0.0f;
  int64_t g = 0, c = 0;
  for (; c + kQuantGroup <= k; c += kQuantGroup, ++g) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < kQuantGroup; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += x[c + i + j] * static_cast<float>(q[c + i + j]);
    total += scales[g] * (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
  }
  float tail = 0.0f;
  for (int64_t i = c; i < k; ++i) tail += x[i] * static_cast<float>(q[i]);
  return c < k ? total + scales[g] * tail : total;
}

__attribute__((target_clones("arch=x86-64-v3", "default")))
float dot_q4(const float* x, const uint8_t* q, const float* scales, int64_t k) {
  float total = 0.0f;
  int64_t g = 0, c = 0;
  for (; c + kQuantGroup <= k; c += kQuantGroup, ++g) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < kQuantGroup; i += 8)
      for (int j = 0; j < 8; j += 2) {
        const uint8_t byte = q[(c + i + j) / 2];
        acc[j] += x[c + i + j] * static_cast<float>((byte & 0x0f) - 8);
        acc[j + 1] += x[c + i + j + 1] * static_cast<float>((byte >> 4) - 8);
      }
    total += scales[g] * (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
  }
  float tail = 0.0f;
  for (int64_t i = c; i < k; ++i) {
    const uint8_t byte = q[i / 2];
    tail += x[i] * static_cast<float>((i % 2 == 0 ? (byte & 0x0f) : (byte >> 4)) - 8);
  }
  return c < k ? total + scales[g] * tail : total;
}

}  // namespace

float dot_row(const float* x, const Weight& w, int64_t r) {
  switch (w.quant) {
    case WeightQuant::kQ8: return dot_q8(x, w.q8() + r * w.cols, w.scales + r * w.groups_per_row(), w.cols);
    case WeightQuant::kQ4: return dot_q4(x, w.q4() + r * w.q4_row_bytes(), w.scales + r * w.groups_per_row(), w.cols);
    case WeightQuant::kNone: break;
  }
  if (w.dtype == DType::kF32) return dot_f32(x, w.f32() + r * w.cols, w.cols);
  return dot_bf16(x, w.bf16() + r * w.cols, w.cols);
}

void matmul_rows(const float* x, int64_t M, const Weight& w, int64_t row_begin, int64_t row_end,
                 float* y, int64_t ldy, Precision p) {
  const int64_t K = w.cols;
  for (int64_t n = row_begin; n < row_end; ++n)
    for (int64_t m = 0; m < M; ++m) y[m * ldy + (n - row_begin)] = p.round(dot_row(x + m * K, w, n));
}

void matmul(ThreadPool& pool, const float* x, int64_t M, const Weight& w, float* y, Precision p) {
  const int64_t N = w.rows;
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(64, N / (4 * pool.size()) + 1));
  const int64_t n_blocks = (N + block - 1) / block;
  pool.parallel_for(n_blocks, [&](int64_t b) {
    const int64_t n0 = b * block;
    const int64_t n1 = std::min(N, n0 + block);
    matmul_rows(x, M, w, n0, n1, y + n0, N, p);
  });
}

}  // namespace moepp
