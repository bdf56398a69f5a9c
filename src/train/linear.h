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

// One single-threaded sgemm on the calling thread, for callers that split work themselves:
// C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when the flag is set.
void gemm_on_this_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                         int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Floating-point operations (2 per multiply-add) issued by every product above since the
// program started, over all threads: the trainer's FLOP/s are this counter's rate.
uint64_t matmul_flops_issued();

}  // namespace moepp
