// Helpers for engine tests: random weights and tensors with a fixed seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "tensor/weight.h"

namespace moepp::testing {

inline Weight random_weight(std::mt19937& rng, int64_t rows, int64_t cols, float scale, DType dtype = DType::kF32) {
  Weight w = make_owned_weight(dtype, rows, cols);
  std::normal_distribution<float> dist(0.0f, scale);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = dist(rng);
    if (dtype == DType::kF32) static_cast<float*>(const_cast<void*>(w.data))[i] = v;
    else static_cast<uint16_t*>(const_cast<void*>(w.data))[i] = f32_to_bf16(v);
  }
  return w;
}

inline std::vector<float> random_vector(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace moepp::testing
