// Compute precision of a forward pass. In bf16 mode activations are kept in f32 arrays but
// rounded to bf16 at every point where a PyTorch bf16 op would round its output, so the
// engine follows the reference model's numerics step by step.
#pragma once

#include <cstddef>

#include "tensor/dtype.h"

namespace moepp {

enum class ComputeDType { kF32, kBF16 };

struct Precision {
  ComputeDType dtype = ComputeDType::kF32;

  bool bf16() const { return dtype == ComputeDType::kBF16; }
  float round(float x) const { return bf16() ? round_bf16(x) : x; }
  void round(float* x, size_t n) const {
    if (bf16()) round_bf16_inplace(x, n);
  }
  // Storage type of weights for this precision.
  DType weight_dtype() const { return bf16() ? DType::kBF16 : DType::kF32; }
};

}  // namespace moepp
