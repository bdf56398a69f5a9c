// Work is split into (expert, row block) tasks pulled from the pool's atomic counter, so a
// skewed expert load still keeps every thread busy. No per-token loop over experts.
#include "moe/experts.h"

#include <algorithm>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {
namespace {

struct Task {
  int32_t expert;
  int64_t row_begin, row_end;
};

constexpr int64_t kRowBlock = 32;

}  // namespace

void run_ffn_experts(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w,
                     const Dispatch& dispatch, int top_k, const float* x, int64_t d_model,
                     float* slot_out, Precision p) {
  const int64_t n_experts = spec.n_experts();
  // Gather each expert's input rows once: xs[offsets[e] + i] = x[token of slot i].
  const int64_t n_rows = static_cast<int64_t>(dispatch.slots.size());
  if (n_rows == 0) return;
  std::vector<float> xs(static_cast<size_t>(n_rows * d_model));  // [n_rows, d_model]
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t token = dispatch.slots[i] / top_k;
    std::copy(x + token * d_model, x + (token + 1) * d_model, xs.begin() + i * d_model);
  }
  // Hidden activations, expert runs back to back: row i has width 2*d_expert of its expert.
  std::vector<int64_t> h_offset(static_cast<size_t>(n_experts + 1), 0);
  for (int64_t e = 0; e < n_experts; ++e) {
    const int64_t rows = dispatch.offsets[e + 1] - dispatch.offsets[e];
    h_offset[e + 1] = h_offset[e] + rows * 2 * spec.ffn_width[e];
  }
  std::vector<float> h(static_cast<size_t>(h_offset[n_experts]));

  // Phase 1: gate_up for every expert with tokens.
  std::vector<Task> tasks;
  for (int32_t e = 0; e < n_experts; ++e) {
    if (dispatch.offsets[e + 1] == dispatch.offsets[e]) continue;
    const int64_t rows = 2 * spec.ffn_width[e];
    for (int64_t r = 0; r < rows; r += kRowBlock) tasks.push_back({e, r, std::min(rows, r + kRowBlock)});
  }
  pool.parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t i) {
    const Task& t = tasks[i];
    const int64_t m = dispatch.offsets[t.expert + 1] - dispatch.offsets[t.expert];
    const int64_t width = 2 * spec.ffn_width[t.expert];
    matmul_rows(xs.data() + dispatch.offsets[t.expert] * d_model, m, w.experts[t.expert].gate_up,
                t.row_begin, t.row_end, h.data() + h_offset[t.expert] + t.row_begin, width, p);
  });

  // SiLU(gate) * up, written over the gate half: act[i] = round(round(silu(a)) * b).
  for (int32_t e = 0; e < n_experts; ++e) {
    const int64_t m = dispatch.offsets[e + 1] - dispatch.offsets[e];
    const int64_t de = spec.ffn_width[e];
    for (int64_t r = 0; r < m; ++r) {
      float* row = h.data() + h_offset[e] + r * 2 * de;
      for (int64_t j = 0; j < de; ++j) row[j] = p.round(p.round(silu(row[j])) * row[de + j]);
    }
  }

  // Phase 2: down projection, from the gate half of each hidden row (leading dimension 2*de).
  tasks.clear();
  for (int32_t e = 0; e < n_experts; ++e) {
    if (dispatch.offsets[e + 1] == dispatch.offsets[e]) continue;
    for (int64_t r = 0; r < d_model; r += kRowBlock) tasks.push_back({e, r, std::min(d_model, r + kRowBlock)});
  }
  pool.parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t i) {
    const Task& t = tasks[i];
    const int64_t m = dispatch.offsets[t.expert + 1] - dispatch.offsets[t.expert];
    const int64_t de = spec.ffn_width[t.expert];
    const float* hin = h.data() + h_offset[t.expert];
    const Weight& down = w.experts[t.expert].down;
    for (int64_t r = 0; r < m; ++r) {
      float* out = slot_out + static_cast<int64_t>(dispatch.slots[dispatch.offsets[t.expert] + r]) * d_model;
      for (int64_t n = t.row_begin; n < t.row_end; ++n)
        out[n] = p.round(dot_row(hin + r * 2 * de, down, n));
    }
  });
}

}  // namespace moepp
