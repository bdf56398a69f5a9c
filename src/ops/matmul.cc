// Matmul on the dispatched row kernels (ops/dot_kernels.h). Work is split over weight rows, so
// every output is computed by the same kernel call pattern whatever the thread count.
#include "ops/matmul.h"

#include <algorithm>
#include <atomic>

#include "ops/dot_kernels.h"

namespace moepp {

float dot_row(const float* x, const Weight& w, int64_t r) {
  float y;
  kernels::active_kernels().rows(x, 1, w.cols, w, r, r + 1, &y, 1);
  return y;
}

namespace {

// Rows of inputs per pool task when they are quantised or paired: enough work (64 rows of up to a
// few thousand columns) to cover the pool's handover.
constexpr int64_t kInputRowsPerTask = 64;

// The outputs rounded to the activation dtype: one pass where the rows are contiguous (an expert
// task's [M, width] block), not one call per row.
void round_outputs(float* y, int64_t M, int64_t width, int64_t ldy, Precision p) {
  if (!p.bf16()) return;
  if (ldy == width) return p.round(y, static_cast<size_t>(M * width));
  for (int64_t m = 0; m < M; ++m) p.round(y + m * ldy, static_cast<size_t>(width));
}

// Pairs x for w into out, running pair_ranges(M, fn(m0, m1)) over its rows.
template <class PairRanges>
bool pair_inputs_with(const float* x, int64_t M, int64_t ldx, const Weight& w, kernels::PairedRows* out,
                      PairRanges pair_ranges) {
  const kernels::KernelSet& kern = kernels::active_kernels();
  out->K = 0;
  // One token takes the GEMV path, which reads f32 inputs.
  if (kern.pair_rows == nullptr || M < 2 || w.quant != WeightQuant::kNone || w.dtype != DType::kBF16) return false;
  const int64_t words = kernels::paired_row_words(w.cols);
  out->pairs.resize(static_cast<size_t>(M * words));
  std::atomic<bool> all_bf16{true};  // f32 inputs fail on their first row: the other ranges stop early
  pair_ranges(M, [&](int64_t m0, int64_t m1) {
    if (all_bf16.load(std::memory_order_relaxed) &&
        !kern.pair_rows(x + m0 * ldx, m1 - m0, ldx, w.cols, out->pairs.data() + m0 * words))
      all_bf16.store(false, std::memory_order_relaxed);
  });
  if (!all_bf16.load()) return false;
  out->K = w.cols;
  return true;
}

}  // namespace

void matmul_rows(const float* x, int64_t M, const Weight& w, int64_t row_begin, int64_t row_end,
                 float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().rows(x, M, w.cols, w, row_begin, row_end, y, ldy);
  round_outputs(y, M, row_end - row_begin, ldy, p);
}

void matmul_rows_quantized(const kernels::QuantizedRows& a, int64_t m0, int64_t M, const Weight& w,
                           int64_t row_begin, int64_t row_end, float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().quantized_rows(a, m0, M, w, row_begin, row_end, y, ldy);
  round_outputs(y, M, row_end - row_begin, ldy, p);
}

void matmul_rows_paired(const kernels::PairedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t row_begin,
                        int64_t row_end, float* y, int64_t ldy, Precision p) {
  kernels::active_kernels().paired_rows(a, m0, M, w, row_begin, row_end, y, ldy);
  round_outputs(y, M, row_end - row_begin, ldy, p);
}

void quantize_inputs(ThreadPool& pool, const float* x, int64_t M, int64_t ldx, int64_t K,
                     kernels::QuantizedRows* out) {
  kernels::size_quantized_rows(M, K, out);
  const kernels::KernelSet& kern = kernels::active_kernels();
  parallel_ranges(pool, M, kInputRowsPerTask, [&](int64_t m0, int64_t m1) { kern.quantize_rows(x + m0 * ldx, m1 - m0, ldx, K, out, m0); });
}

bool pair_inputs_for(const float* x, int64_t M, int64_t ldx, const Weight& w, kernels::PairedRows* out) {
  return pair_inputs_with(x, M, ldx, w, out, [](int64_t rows, auto&& fn) { fn(int64_t{0}, rows); });
}

bool pair_inputs_for(ThreadPool& pool, const float* x, int64_t M, int64_t ldx, const Weight& w,
                     kernels::PairedRows* out) {
  return pair_inputs_with(x, M, ldx, w, out,
                          [&](int64_t rows, auto&& fn) { parallel_ranges(pool, rows, kInputRowsPerTask, fn); });
}

void matmul(ThreadPool& pool, const float* x, int64_t M, const Weight& w, float* y, Precision p) {
  matmul_many(pool, x, M, {MatmulTarget{&w, y}}, p);
}

void matmul_many(ThreadPool& pool, const float* x, int64_t M, std::initializer_list<MatmulTarget> targets,
                 Precision p) {
  // Every matmul comes through here (a decode step makes about a hundred): no heap allocation.
  constexpr size_t kMaxTargets = 4;
  const MatmulTarget* t = targets.begin();
  const size_t count = targets.size();
  const Weight& w0 = *t[0].w;
  bool shared = count <= kMaxTargets;  // one input preparation needs one input width and format
  for (const MatmulTarget& target : targets)
    shared = shared && target.w->cols == w0.cols && target.w->quant == w0.quant && target.w->dtype == w0.dtype;
  if (!shared) {
    for (const MatmulTarget& each : targets) matmul_many(pool, x, M, {each}, p);
    return;
  }
  // Whole blocks of the row-interleaved layout (8 rows f32/bf16, 16 q8/q4): for a
  // few tokens one block per thread, each streaming its share of the rows in one run (see
  // rows_per_task in moe/experts.cc); 128 rows from 16 tokens on and 64 in between, at most a
  // quarter of a thread's share. Each weight has its own blocks.
  int64_t block[kMaxTargets], first_task[kMaxTargets + 1] = {0};
  for (size_t i = 0; i < count; ++i) {
    const int64_t N = t[i].w->rows;
    const int64_t R = t[i].w->block_rows();
    block[i] = M <= 4 ? rows_per_thread(N, pool.size(), R)
                      : std::min<int64_t>(M >= 16 ? 128 : 64, (N / (4 * pool.size()) + R) / R * R);
    first_task[i + 1] = first_task[i] + (N + block[i] - 1) / block[i];
  }
  // The input prepared once for all weights and row blocks: quantised (q8/q4) or paired (bf16
  // batches). A named reference: worker threads must read the caller's buffer, not their own
  // thread_local instance.
  thread_local kernels::QuantizedRows quantized_buffer;
  thread_local kernels::PairedRows pairs_buffer;
  kernels::QuantizedRows& quantized = quantized_buffer;
  kernels::PairedRows& pairs = pairs_buffer;
  const bool quant = w0.quant != WeightQuant::kNone;
  if (quant) quantize_inputs(pool, x, M, w0.cols, w0.cols, &quantized);
  const bool paired = !quant && kernels::active_kernels().pairs(M) && pair_inputs_for(pool, x, M, w0.cols, w0, &pairs);
  pool.parallel_for(first_task[count], [&](int64_t task) {
    size_t i = 0;
    while (task >= first_task[i + 1]) ++i;
    const Weight& w = *t[i].w;
    const int64_t N = w.rows, n0 = (task - first_task[i]) * block[i], n1 = std::min(N, n0 + block[i]);
    float* y = t[i].y + n0;
    if (quant) matmul_rows_quantized(quantized, 0, M, w, n0, n1, y, N, p);
    else if (paired) matmul_rows_paired(pairs, 0, M, w, n0, n1, y, N, p);
    else matmul_rows(x, M, w, n0, n1, y, N, p);
  });
}

}  // namespace moepp
