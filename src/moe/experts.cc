// Work is split into (expert, row block) tasks pulled from the pool's atomic counter, so a
// skewed expert load still keeps every thread busy. No per-token loop over experts: each task
// runs one kernel call over all of its expert's gathered tokens (GEMV for one token, register-
// tiled GEMM for several; ops/dot_kernels.h).
#include "moe/experts.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {
namespace {

struct Task {
  int32_t expert;
  int64_t row_begin, row_end;
};

// Rows per task (whole interleaved blocks of `block_rows`). One to four tokens: one block per thread, so each
// thread streams its share of a matrix in one run. Threads taking turns over short blocks made
// every task start a new memory stream: `moepp bench --stream --weights q8 -t 2` read 2816 x 1024
// matrices at 46 GB/s in 128-row tasks against 59-64 in halves (the plain read alike, 56 against
// 75), and earlier 32-row q4 tasks read no faster with two threads than with one. From 5 tokens
// 128, where each task's work on its inputs and its first, unprefetched panel of weights are
// spread over more rows, and a layer's many experts keep both threads busy. 32-row tasks for
// 5-15 tokens (until session 21) held MoE++'s experts back: `bench --model-shape moepp-1b
// --compare-vanilla --weights bf16 -t 2 -p 128 --zc-share 0.5` (8 tokens an FFN expert against
// the vanilla twin's 16), expert speed-up over the FFN-work ratio 0.79 -> 0.84-0.86.
int64_t rows_per_task(int64_t tokens, int64_t rows, int threads, int64_t block_rows) {
  if (tokens <= 4) return rows_per_thread(rows, threads, block_rows);
  return 128;
}

// (expert, row block) tasks over `rows(e)` rows of `weight(e)` for every expert with tokens.
template <class RowsOf, class WeightOf>
std::vector<Task> row_block_tasks(const Dispatch& dispatch, int64_t n_experts, int threads, RowsOf rows,
                                  WeightOf weight) {
  std::vector<Task> tasks;
  for (int32_t e = 0; e < n_experts; ++e) {
    const int64_t tokens = dispatch.offsets[e + 1] - dispatch.offsets[e];
    if (tokens == 0) continue;
    const int64_t n = rows(e), block = rows_per_task(tokens, n, threads, weight(e).block_rows());
    for (int64_t r = 0; r < n; r += block) tasks.push_back({e, r, std::min(n, r + block)});
  }
  return tasks;
}

}  // namespace

void run_ffn_experts(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w,
                     const Dispatch& dispatch, int top_k, const float* x, int64_t d_model,
                     float* slot_out, Precision p) {
  const int64_t n_experts = spec.n_experts();
  const int64_t n_rows = static_cast<int64_t>(dispatch.slots.size());
  if (n_rows == 0) return;
  // Gather each expert's input rows once: xs[offsets[e] + i] = x[token of slot i].
  // Neither xs nor act is zero-filled: every row is written before it is read.
  const auto xs = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n_rows * d_model));  // [n_rows, d_model]
  parallel_ranges(pool, n_rows, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t token = dispatch.slots[i] / top_k;
      std::copy(x + token * d_model, x + (token + 1) * d_model, &xs[i * d_model]);
    }
  });
  // SiLU(gate) * up per expert, experts back to back: act_offset[e] + i * d_expert(e).
  std::vector<int64_t> act_offset(static_cast<size_t>(n_experts + 1), 0);
  for (int64_t e = 0; e < n_experts; ++e)
    act_offset[e + 1] = act_offset[e] + (dispatch.offsets[e + 1] - dispatch.offsets[e]) * spec.ffn_width[e];
  const auto act = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(act_offset[n_experts]));
  // q8/q4 experts take inputs quantised once per token (ops/dot_kernels.h), not once per task.
  auto quantized = [](const Weight& m) { return m.quant != WeightQuant::kNone; };
  bool any_gate_up_quantized = false;
  for (int64_t e = 0; e < n_experts; ++e)
    any_gate_up_quantized |= dispatch.offsets[e + 1] > dispatch.offsets[e] && quantized(w.experts[e].gate_up);
  kernels::QuantizedRows xs_q;  // [n_rows, d_model] quantised
  if (any_gate_up_quantized) quantize_inputs(pool, xs.get(), n_rows, d_model, d_model, &xs_q);
  // bf16 experts with several tokens (fewer than the kernels' paired_below) likewise take inputs
  // paired once for vdpbf16ps, where the kernels have that path (KernelSet::pairs).
  const kernels::KernelSet& kern = kernels::active_kernels();
  const Weight* bf16_gate_up = nullptr;
  for (int64_t e = 0; e < n_experts && bf16_gate_up == nullptr; ++e)
    if (kern.pairs(dispatch.offsets[e + 1] - dispatch.offsets[e]) && !quantized(w.experts[e].gate_up))
      bf16_gate_up = &w.experts[e].gate_up;
  kernels::PairedRows xs_pairs;
  const bool xs_paired = bf16_gate_up != nullptr && pair_inputs_for(pool, xs.get(), n_rows, d_model, *bf16_gate_up, &xs_pairs);
  auto pairs_fit = [&](bool paired, int64_t m, const Weight& m_w) {
    return paired && kern.pairs(m) && m_w.quant == WeightQuant::kNone && m_w.dtype == DType::kBF16;
  };

  // Phase 1, fused gate + up + SiLU: a task computes gate rows [r0, r1) and the matching up
  // rows [de + r0, de + r1) of gate_up for all its expert's tokens, then
  // act = round(round(silu(gate)) * up), so gate and up never leave the task.
  auto gate_up_task = [&](const Task& t) {
    const int64_t m = dispatch.offsets[t.expert + 1] - dispatch.offsets[t.expert];
    const int64_t de = spec.ffn_width[t.expert];
    const int64_t width = t.row_end - t.row_begin;
    const float* xe = xs.get() + dispatch.offsets[t.expert] * d_model;
    const Weight& gate_up = w.experts[t.expert].gate_up;
    thread_local std::vector<float> gate, up;  // [m, width]
    gate.resize(static_cast<size_t>(m * width));
    up.resize(static_cast<size_t>(m * width));
    if (quantized(gate_up)) {
      const int64_t first = dispatch.offsets[t.expert];
      matmul_rows_quantized(xs_q, first, m, gate_up, t.row_begin, t.row_end, gate.data(), width, p);
      matmul_rows_quantized(xs_q, first, m, gate_up, de + t.row_begin, de + t.row_end, up.data(), width, p);
    } else if (pairs_fit(xs_paired, m, gate_up)) {
      const int64_t first = dispatch.offsets[t.expert];
      matmul_rows_paired(xs_pairs, first, m, gate_up, t.row_begin, t.row_end, gate.data(), width, p);
      matmul_rows_paired(xs_pairs, first, m, gate_up, de + t.row_begin, de + t.row_end, up.data(), width, p);
    } else {
      matmul_rows(xe, m, gate_up, t.row_begin, t.row_end, gate.data(), width, p);
      matmul_rows(xe, m, gate_up, de + t.row_begin, de + t.row_end, up.data(), width, p);
    }
    float* out = act.get() + act_offset[t.expert] + t.row_begin;
    for (int64_t r = 0; r < m; ++r) silu_times(&gate[r * width], &up[r * width], width, out + r * de, p);
  };

  // Between the phases, an expert's whole act is prepared once for its down kernel.
  std::vector<kernels::QuantizedRows> act_q(static_cast<size_t>(n_experts));  // for q8/q4 experts
  std::vector<kernels::PairedRows> act_pairs(static_cast<size_t>(n_experts));  // for bf16 experts
  std::vector<char> act_paired(static_cast<size_t>(n_experts), 0);
  auto prepare_down_inputs = [&](int64_t e) {
    const int64_t m = dispatch.offsets[e + 1] - dispatch.offsets[e];
    const float* a = act.get() + act_offset[e];
    if (quantized(w.experts[e].down)) kernels::quantize_activations(a, m, spec.ffn_width[e], spec.ffn_width[e], &act_q[e]);
    else if (kern.pairs(m)) act_paired[e] = pair_inputs_for(a, m, spec.ffn_width[e], w.experts[e].down, &act_pairs[e]);
  };

  // Phase 2, down projection of every expert's tokens, written straight to their slot rows.
  auto down_task = [&](const Task& t) {
    const int64_t first = dispatch.offsets[t.expert];
    const int64_t m = dispatch.offsets[t.expert + 1] - first;
    const int64_t width = t.row_end - t.row_begin;
    thread_local std::vector<float> ys;  // [m, width]
    ys.resize(static_cast<size_t>(m * width));
    const Weight& down = w.experts[t.expert].down;
    if (quantized(down))
      matmul_rows_quantized(act_q[t.expert], 0, m, down, t.row_begin, t.row_end, ys.data(), width, p);
    else if (pairs_fit(act_paired[t.expert] != 0, m, down))
      matmul_rows_paired(act_pairs[t.expert], 0, m, down, t.row_begin, t.row_end, ys.data(), width, p);
    else
      matmul_rows(act.get() + act_offset[t.expert], m, down, t.row_begin, t.row_end, ys.data(), width, p);
    for (int64_t r = 0; r < m; ++r) {
      float* out = slot_out + static_cast<int64_t>(dispatch.slots[first + r]) * d_model + t.row_begin;
      std::copy(ys.begin() + r * width, ys.begin() + (r + 1) * width, out);
    }
  };

  // Both phases run as one pool job, so a layer pays one barrier, not three: tasks
  // [0, n_up) are gate+up tasks, the rest down tasks. The thread that finishes an expert's last
  // gate+up task prepares its down inputs and marks it ready; a down task waits for its expert.
  // Threads claim tasks in index order, so every gate+up task is claimed before any down task
  // and a waiting thread only ever waits on work already running on another thread.
  const std::vector<Task> up_tasks =
      row_block_tasks(dispatch, n_experts, pool.size(), [&](int32_t e) { return spec.ffn_width[e]; },
                      [&](int32_t e) -> const Weight& { return w.experts[e].gate_up; });
  const std::vector<Task> down_tasks =
      row_block_tasks(dispatch, n_experts, pool.size(), [&](int32_t) { return d_model; },
                      [&](int32_t e) -> const Weight& { return w.experts[e].down; });
  std::vector<std::atomic<int32_t>> up_left(static_cast<size_t>(n_experts));  // gate+up tasks not yet done
  std::vector<std::atomic<bool>> ready(static_cast<size_t>(n_experts));         // down inputs prepared
  for (int64_t e = 0; e < n_experts; ++e) {
    up_left[e].store(0, std::memory_order_relaxed);
    ready[e].store(false, std::memory_order_relaxed);
  }
  for (const Task& t : up_tasks) up_left[t.expert].fetch_add(1, std::memory_order_relaxed);
  const int64_t n_up = static_cast<int64_t>(up_tasks.size());
  pool.parallel_for(n_up + static_cast<int64_t>(down_tasks.size()), [&](int64_t i) {
    if (i < n_up) {
      const Task& t = up_tasks[i];
      gate_up_task(t);
      if (up_left[t.expert].fetch_sub(1, std::memory_order_acq_rel) == 1) {
        prepare_down_inputs(t.expert);
        ready[t.expert].store(true, std::memory_order_release);
      }
      return;
    }
    const Task& t = down_tasks[i - n_up];
    ThreadPool::spin_until(ready[t.expert]);
    down_task(t);
  });
}

}  // namespace moepp
