// Symmetric absmax group quantisation (as in llama.cpp's Q8_0 / Q4_0 family of formats).
#include "tensor/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "platform/simd_clones.h"

namespace moepp {

namespace {

// Rows [r0, r1) of w quantised into `values_out` (row-major, row_bytes a row, every byte written)
// and `scales` ([r1 - r0, groups]), row r0 first.
MOEPP_SIMD_CLONES
void quantize_rows(const Weight& w, WeightQuant quant, int64_t r0, int64_t r1, uint8_t* values_out,
                   int64_t row_bytes, float* scales) {
  const int64_t gpr = w.groups_per_row();
  const float qmax = quant == WeightQuant::kQ8 ? 127.0f : 7.0f;
  const int qlimit = quant == WeightQuant::kQ8 ? 127 : 8;  // q4 clamps to [-8, 7] below
  // One row as f32: kept per thread, as loading calls this once per block of 16 rows.
  thread_local std::vector<float> values;
  values.resize(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    // Row-major f32/bf16 (checkpoints, random models) converted directly: Weight::at per element
    // was a third of the time of loading a model with --weights q4.
    if (w.interleaved) {
      for (int64_t c = 0; c < w.cols; ++c) values[c] = w.at(r, c);
    } else if (w.dtype == DType::kBF16) {
      for (int64_t c = 0; c < w.cols; ++c) values[c] = bf16_to_f32(w.bf16()[r * w.cols + c]);
    } else {
      std::copy(w.f32() + r * w.cols, w.f32() + (r + 1) * w.cols, values.begin());
    }
    uint8_t* row = values_out + (r - r0) * row_bytes;
    for (int64_t g = 0; g < gpr; ++g) {
      const int64_t c0 = g * kQuantGroup;
      const int64_t n = std::min(w.cols, c0 + kQuantGroup) - c0;
      const float* x = values.data() + c0;
      // 8 independent lanes of the largest magnitude (GCC 12 keeps them scalar, but not as one
      // chain of dependent maxima); a NaN is skipped by std::max either way, and the largest of
      // the lanes is the largest of all.
      float lane_amax[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t c8 = 0;
      for (; c8 + 8 <= n; c8 += 8)
        for (int j = 0; j < 8; ++j) lane_amax[j] = std::max(lane_amax[j], std::fabs(x[c8 + j]));
      for (; c8 < n; ++c8) lane_amax[0] = std::max(lane_amax[0], std::fabs(x[c8]));
      const float amax = *std::max_element(lane_amax, lane_amax + 8);
      const float s = amax / qmax;
      scales[(r - r0) * gpr + g] = s;
      const float inv = s > 0.0f ? 1.0f / s : 0.0f;
      int32_t q[kQuantGroup];
      for (int64_t c = 0; c < n; ++c) {
        // lround (halves away from zero) without its library call: exact in double for any float
        // (NaN gives 0, as lround's LONG_MIN did once narrowed to int).
        // A group whose absmax is below about 1e-36 has an infinite inverse scale: bounded first,
        // its codes keep their signs (the conversion of an infinity was undefined).
        const double scaled = static_cast<double>(x[c] * inv);
        const double bounded = std::clamp(scaled, -(qlimit + 1.0), qlimit + 1.0);
        const int v = std::isnan(scaled) ? 0 : static_cast<int>(bounded + std::copysign(0.5, bounded));
        q[c] = std::clamp(v, -qlimit, qlimit);
      }
      if (quant == WeightQuant::kQ8) {
        for (int64_t c = 0; c < n; ++c) reinterpret_cast<int8_t*>(row)[c0 + c] = static_cast<int8_t>(q[c]);
      } else {
        // Columns 2i (low nibble) and 2i + 1 (high) in byte i; a short group's last odd column alone.
        auto nibble = [&](int64_t c) { return static_cast<uint8_t>(std::min(q[c], 7) + 8); };
        uint8_t* bytes = row + c0 / 2;
        for (int64_t i = 0; i < n / 2; ++i) bytes[i] = static_cast<uint8_t>(nibble(2 * i) | nibble(2 * i + 1) << 4);
        if (n % 2 != 0) bytes[n / 2] = nibble(n - 1);
      }
    }
  }
}

// The row-major quantised shape of w (no data).
Weight quantized_shape(const Weight& w, WeightQuant quant) {
  Weight q;
  q.dtype = DType::kF32;
  q.quant = quant;
  q.rows = w.rows;
  q.cols = w.cols;
  return q;
}

int64_t quantized_row_bytes(const Weight& q) { return q.quant == WeightQuant::kQ8 ? q.cols : q.q4_row_bytes(); }

}  // namespace

Result<Weight> quantize_weight(const Weight& w, WeightQuant quant, ThreadPool* pool) {
  if (quant == WeightQuant::kNone) return w;
  if (w.quant != WeightQuant::kNone) return Status::Error("quantize: weight is already quantised");
  Weight q = quantized_shape(w, quant);
  const int64_t row_bytes = quantized_row_bytes(q);
  const size_t value_bytes = static_cast<size_t>(w.rows * row_bytes);
  const size_t scale_offset = (value_bytes + 63) / 64 * 64;
  q.owner = allocate_aligned(scale_offset + static_cast<size_t>(w.rows * q.groups_per_row()) * sizeof(float));
  uint8_t* p = static_cast<uint8_t*>(q.owner.get());
  q.data = p;
  float* scales = reinterpret_cast<float*>(p + scale_offset);
  q.scales = scales;
  // Loading a large model quantises billions of weights: 64 rows a task (16-128K values) cover
  // the pool's handover many times over.
  parallel_ranges(pool, w.rows, 64, [&](int64_t r0, int64_t r1) {
    quantize_rows(w, quant, r0, r1, p + r0 * row_bytes, row_bytes, scales + r0 * q.groups_per_row());
  });
  return q;
}

Result<Weight> quantize_interleaved(const Weight& w, WeightQuant quant, ThreadPool* pool) {
  if (quant == WeightQuant::kNone) return interleave_rows(w, pool);
  if (w.quant != WeightQuant::kNone) return Status::Error("quantize: weight is already quantised");
  const Weight shape = quantized_shape(w, quant);
  const int64_t row_bytes = quantized_row_bytes(shape);
  // Each block of 16 rows quantised into a buffer of its thread's own (10 KiB for q4 rows of 1024
  // columns, 72 KiB for q8 rows of 4096, scales included), which stays in cache until the block
  // is interleaved from it.
  return interleave_quantized_rows(
      shape,
      [&](int64_t r0, int64_t r1) {
        thread_local std::vector<uint8_t> values;
        thread_local std::vector<float> scales;
        values.resize(static_cast<size_t>((r1 - r0) * row_bytes));
        scales.resize(static_cast<size_t>((r1 - r0) * shape.groups_per_row()));
        quantize_rows(w, quant, r0, r1, values.data(), row_bytes, scales.data());
        QuantizedRowRange range;
        range.rows = shape;
        range.rows.rows = r1 - r0;
        range.rows.data = values.data();
        range.rows.scales = scales.data();
        return range;
      },
      pool);
}

}  // namespace moepp
