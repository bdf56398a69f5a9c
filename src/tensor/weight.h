// A 2-D weight matrix [rows, cols] (row-major, PyTorch [out, in]) in f32 or bf16, either a
// zero-copy view into a mapped checkpoint or memory it owns.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/dtype.h"

namespace moepp {

struct Weight {
  DType dtype = DType::kF32;  // kF32 or kBF16
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;     // rows * cols elements, may point into a MappedFile
  std::shared_ptr<void> owner;    // keeps owned memory alive (null for mapped views)

  bool empty() const { return data == nullptr; }
  const float* f32() const { return static_cast<const float*>(data); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data); }
  size_t nbytes() const { return static_cast<size_t>(rows * cols) * dtype_size(dtype); }
  // Element (r, c) as f32 (slow path: tests, small tensors).
  float at(int64_t r, int64_t c) const {
    const int64_t i = r * cols + c;
    return dtype == DType::kF32 ? f32()[i] : bf16_to_f32(bf16()[i]);
  }
};

// Allocates an owned weight of the given shape, contents uninitialised.
Weight make_owned_weight(DType dtype, int64_t rows, int64_t cols);

}  // namespace moepp
