// Dense matrix products, one convention: y[M,N] = x[M,K] * W[N,K]^T (weights [out, in]).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "ops/dot_kernels.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

// y = x * W^T, each output rounded to the activation precision. W is f32, bf16, q8 or q4.
void matmul(ThreadPool& pool, const float* x /*[M,K]*/, int64_t M, const Weight& w /*[N,K]*/,
            float* y /*[M,N]*/, Precision p);

// Several weights of the same input width and format multiplied by the same x (attention's q, k
// and v): the input is quantised or paired once, and one pool job runs every weight's row blocks.
// The same bits as one matmul per weight.
struct MatmulTarget {
  const Weight* w;  // [N, K]
  float* y;         // [M, N]
};
void matmul_many(ThreadPool& pool, const float* x /*[M,K]*/, int64_t M, std::initializer_list<MatmulTarget> targets,
                 Precision p);

// Rows per task when a few tokens (up to 4) stream a matrix of `rows` rows: one range of whole
// interleaved blocks (`block_rows`: Weight::block_rows(), 8 or 16) per thread, so each thread
// reads its share in one run (short blocks taken in turns restart every thread's memory stream at
// every task; see moe/experts.cc).
inline int64_t rows_per_thread(int64_t rows, int threads, int64_t block_rows) {
  return ((rows + threads - 1) / threads + block_rows - 1) / block_rows * block_rows;
}

// Same on rows [row_begin, row_end) of W only: y is [M, row_end-row_begin]. Single-threaded
// building block for callers that split work themselves (experts).
void matmul_rows(const float* x /*[M,K]*/, int64_t M, const Weight& w, int64_t row_begin,
                 int64_t row_end, float* y /*[M, row_end-row_begin]*/, int64_t ldy, Precision p);

// matmul_rows for q8/q4 weights on inputs the caller quantised once (kernels::
// quantize_activations): rows [m0, m0 + M) of `a`. Same bits as matmul_rows on the f32 rows.
void matmul_rows_quantized(const kernels::QuantizedRows& a, int64_t m0, int64_t M, const Weight& w,
                           int64_t row_begin, int64_t row_end, float* y /*[M, ldy]*/, int64_t ldy, Precision p);

// matmul_rows for bf16 weights on inputs the caller paired once (KernelSet::pair_rows).
void matmul_rows_paired(const kernels::PairedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t row_begin,
                        int64_t row_end, float* y /*[M, ldy]*/, int64_t ldy, Precision p);

// kernels::quantize_activations with ranges of rows quantised over the pool (the same bits).
void quantize_inputs(ThreadPool& pool, const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, int64_t K,
                     kernels::QuantizedRows* out);

// The paired inputs of x for weight w where the active kernels have such a path (bf16 weights, a
// batch of bf16-valued inputs): true and *out filled, else false.
bool pair_inputs_for(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, const Weight& w, kernels::PairedRows* out);
// The same with ranges of rows paired over the pool (the same bits).
bool pair_inputs_for(ThreadPool& pool, const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, const Weight& w,
                     kernels::PairedRows* out);

// One dot product of an f32 vector with row r of W.
float dot_row(const float* x, const Weight& w, int64_t r);

}  // namespace moepp
