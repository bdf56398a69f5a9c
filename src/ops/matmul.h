// Dense matrix products, one convention: y[M,N] = x[M,K] * W[N,K]^T (weights [out, in]).
#pragma once

#include <cstdint>

#include "ops/precision.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

// y = x * W^T, each output rounded to the activation precision. W is f32 or bf16.
void matmul(ThreadPool& pool, const float* x /*[M,K]*/, int64_t M, const Weight& w /*[N,K]*/,
            float* y /*[M,N]*/, Precision p);

// Same on rows [row_begin, row_end) of W only: y is [M, row_end-row_begin]. Single-threaded
// building block for callers that split work themselves (experts).
void matmul_rows(const float* x /*[M,K]*/, int64_t M, const Weight& w, int64_t row_begin,
                 int64_t row_end, float* y /*[M, row_end-row_begin]*/, int64_t ldy, Precision p);

// One dot product of an f32 vector with row r of W.
float dot_row(const float* x, const Weight& w, int64_t r);

}  // namespace moepp
