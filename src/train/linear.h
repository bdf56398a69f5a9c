// fp32 dense products for training, forward and both backward products, one convention:
// y[M,N] = x[M,K] * W[N,K]^T. Each thread owns whole output rows and sums in a fixed order,
// so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "platform/thread_pool.h"

namespace moepp {

// y = x W^T (overwrites y).
void linear_forward(ThreadPool& pool, const float* x /*[M,K]*/, int64_t M, int64_t K,
                    const float* w /*[N,K]*/, int64_t N, float* y /*[M,N]*/);

// dx += dy W.
void linear_backward_input(ThreadPool& pool, const float* dy /*[M,N]*/, int64_t M, int64_t N,
                           const float* w /*[N,K]*/, int64_t K, float* dx /*[M,K]*/);

// dw += dy^T x.
void linear_backward_weight(ThreadPool& pool, const float* dy /*[M,N]*/, int64_t M, int64_t N,
                            const float* x /*[M,K]*/, int64_t K, float* dw /*[N,K]*/);

}  // namespace moepp
