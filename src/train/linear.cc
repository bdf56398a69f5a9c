// Portable loops written so the compiler vectorises the contiguous inner dimension; the work
// is split into blocks of output rows pulled from the pool.
#include "train/linear.h"

#include <algorithm>
#include <vector>

namespace moepp {
namespace {

constexpr int64_t kBlock = 16;

__attribute__((target_clones("arch=x86-64-v3", "default")))
float dot(const float* a, const float* b, int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

__attribute__((target_clones("arch=x86-64-v3", "default")))
void axpy(float a, const float* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] += a * x[i];
}

}  // namespace

void linear_forward(ThreadPool& pool, const float* x, int64_t M, int64_t K, const float* w, int64_t N, float* y) {
  // Tasks are blocks of W rows, so one W block stays in cache across all M rows of x.
  const int64_t n_blocks = (N + kBlock - 1) / kBlock;
  pool.parallel_for(n_blocks, [&](int64_t b) {
    const int64_t n0 = b * kBlock, n1 = std::min(N, n0 + kBlock);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) y[m * N + n] = dot(x + m * K, w + n * K, K);
  });
}

void linear_backward_input(ThreadPool& pool, const float* dy, int64_t M, int64_t N, const float* w, int64_t K,
                           float* dx) {
  const int64_t m_blocks = (M + kBlock - 1) / kBlock;
  pool.parallel_for(m_blocks, [&](int64_t b) {
    const int64_t m0 = b * kBlock, m1 = std::min(M, m0 + kBlock);
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float g = dy[m * N + n];
        if (g != 0.0f) axpy(g, w + n * K, dx + m * K, K);
      }
  });
}

void linear_backward_weight(ThreadPool& pool, const float* dy, int64_t M, int64_t N, const float* x, int64_t K,
                            float* dw) {
  const int64_t n_blocks = (N + kBlock - 1) / kBlock;
  pool.parallel_for(n_blocks, [&](int64_t b) {
    const int64_t n0 = b * kBlock, n1 = std::min(N, n0 + kBlock);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) {
        const float g = dy[m * N + n];
        if (g != 0.0f) axpy(g, x + m * K, dw + n * K, K);
      }
  });
}

}  // namespace moepp
