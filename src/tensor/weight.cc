// Owned weight allocation, element access and sizes for every weight format.
#include "tensor/weight.h"

#include <cstdlib>

namespace moepp {

void* allocate_aligned(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }

Weight make_owned_weight(DType dtype, int64_t rows, int64_t cols) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  const size_t bytes = static_cast<size_t>(rows * cols) * dtype_size(dtype);
  void* p = allocate_aligned(bytes);
  w.owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  w.data = p;
  return w;
}

size_t Weight::nbytes() const {
  const size_t n = static_cast<size_t>(rows * cols);
  switch (quant) {
    case WeightQuant::kNone: return n * dtype_size(dtype);
    case WeightQuant::kQ8: return n + static_cast<size_t>(rows * groups_per_row()) * sizeof(float);
    case WeightQuant::kQ4: return static_cast<size_t>(rows * (q4_row_bytes() + groups_per_row() * 4));
  }
  return 0;
}

float Weight::at(int64_t r, int64_t c) const {
  const int64_t i = r * cols + c;
  switch (quant) {
    case WeightQuant::kNone: return dtype == DType::kF32 ? f32()[i] : bf16_to_f32(bf16()[i]);
    case WeightQuant::kQ8: return scales[r * groups_per_row() + c / kQuantGroup] * static_cast<float>(q8()[i]);
    case WeightQuant::kQ4: {
      const uint8_t byte = q4()[r * q4_row_bytes() + c / 2];
      const int v = (c % 2 == 0 ? (byte & 0x0f) : (byte >> 4)) - 8;
      return scales[r * groups_per_row() + c / kQuantGroup] * static_cast<float>(v);
    }
  }
  return 0.0f;
}

const char* weight_format_name(const Weight& w) {
  switch (w.quant) {
    case WeightQuant::kQ8: return "q8";
    case WeightQuant::kQ4: return "q4";
    case WeightQuant::kNone: break;
  }
  return w.dtype == DType::kF32 ? "f32" : "bf16";
}

}  // namespace moepp
