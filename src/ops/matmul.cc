// Matmul on the dispatched row kernels (ops/dot_kernels.h). Work is split over weight rows, so
// every output is computed by the same kernel call pattern whatever the thread count.
#include "ops/matmul.h"

#include <algorithm>

#include "ops/dot_kernels.h"

namespace moepp {

float dot_row(const float* x, const Weight& w, int64_t r) {
  float y;
  kernels::active_kernels().rows(x, 1, w.cols, w, r, r + 1, &y, 1);
  return y;
}

void matmul_rows(const float* x, int64_t M, const Weight& w, int64_t row_begin, int64_t row_end,
                 float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().rows(x, M, w.cols, w, row_begin, row_end, y, ldy);
  if (!p.bf16()) return;
  for (int64_t m = 0; m < M; ++m) p.round(y + m * ldy, static_cast<size_t>(row_end - row_begin));
}

void matmul_rows_quantized(const kernels::QuantizedRows& a, int64_t m0, int64_t M, const Weight& w,
                           int64_t row_begin, int64_t row_end, float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().quantized_rows(a, m0, M, w, row_begin, row_end, y, ldy);
  if (!p.bf16()) return;
  for (int64_t m = 0; m < M; ++m) p.round(y + m * ldy, static_cast<size_t>(row_end - row_begin));
}

void matmul_rows_paired(const kernels::PairedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t row_begin,
                        int64_t row_end, float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().paired_rows(a, m0, M, w, row_begin, row_end, y, ldy);
  if (!p.bf16()) return;
  for (int64_t m = 0; m < M; ++m) p.round(y + m * ldy, static_cast<size_t>(row_end - row_begin));
}

bool pair_inputs_for(const float* x, int64_t M, int64_t ldx, const Weight& w, kernels::PairedRows* out) {
  const kernels::KernelSet& kern = kernels::active_kernels();
  // One token takes the GEMV path, which reads f32 inputs.
  if (kern.pair_rows == nullptr || M < 2 || w.quant != WeightQuant::kNone || w.dtype != DType::kBF16) return false;
  return kern.pair_rows(x, M, ldx, w.cols, out);
}

void matmul(ThreadPool& pool, const float* x, int64_t M, const Weight& w, float* y, Precision p) {
  const int64_t N = w.rows;
  // Blocks of whole 8-row groups, so they line up with the row-interleaved layout's blocks: up to
  // 256 rows for a few tokens, whose task streams its rows from memory once, 128 from 16 tokens
  // on and 64 in between (see rows_per_task in moe/experts.cc).
  const int64_t cap = M <= 4 ? 256 : M >= 16 ? 128 : 64;
  const int64_t block = std::min<int64_t>(cap, (N / (4 * pool.size()) + 8) / 8 * 8);
  const int64_t n_blocks = (N + block - 1) / block;
  if (w.quant != WeightQuant::kNone) {  // the input is quantised once, not per block of rows
    // A named reference: worker threads must read the caller's buffer, not their own
    // thread_local instance.
    thread_local kernels::QuantizedRows buffer;
    kernels::QuantizedRows& a = buffer;
    kernels::quantize_activations(x, M, w.cols, w.cols, &a);
    pool.parallel_for(n_blocks, [&](int64_t b) {
      const int64_t n0 = b * block;
      matmul_rows_quantized(a, 0, M, w, n0, std::min(N, n0 + block), y + n0, N, p);
    });
    return;
  }
  // bf16 batches: the inputs paired once, not per block of rows (as quantised above).
  thread_local kernels::PairedRows pairs_buffer;
  kernels::PairedRows& pairs = pairs_buffer;
  const bool paired = pair_inputs_for(x, M, w.cols, w, &pairs);
  pool.parallel_for(n_blocks, [&](int64_t b) {
    const int64_t n0 = b * block;
    const int64_t n1 = std::min(N, n0 + block);
    if (paired) matmul_rows_paired(pairs, 0, M, w, n0, n1, y + n0, N, p);
    else matmul_rows(x, M, w, n0, n1, y + n0, N, p);
  });
}

}  // namespace moepp
