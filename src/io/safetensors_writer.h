// A minimal safetensors writer for f32 tensors (training outputs, gradient dumps, exported
// models), stored as F32 or rounded to BF16 (nearest even, as PyTorch's cast). Layout as the reference writer: 8-byte header length, compact JSON header padded
// with spaces to a multiple of 8, then the tensors back to back in the order given.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace moepp {

struct F32TensorView {
  std::string name;
  std::vector<int64_t> shape;  // product = number of floats at data
  const float* data = nullptr;
};

enum class StoredDType { kF32, kBF16 };

// Writes `tensors` (names must be unique) to `path`, replacing it. metadata goes into
// "__metadata__" (the reference writer's {"format": "pt"} when empty).
Status write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata = {},
                             StoredDType stored = StoredDType::kF32);

}  // namespace moepp
