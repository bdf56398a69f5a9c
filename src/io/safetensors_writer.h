// A minimal safetensors writer: raw little-endian tensors of any stored dtype (quantised
// models: I8/U8 values next to F32 scales), and an f32 front end that stores F32 or rounds to
// BF16 (nearest even, as PyTorch's cast) for training outputs and exported models. Layout as
// the reference writer: 8-byte header length, compact JSON header padded with spaces to a
// multiple of 8, then the tensors back to back in the order given.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "tensor/dtype.h"

namespace moepp {

struct TensorBytesView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // product * dtype_size(dtype) bytes at data
  const void* data = nullptr;
  // Instead of data: writes the tensor's bytes into `out` when its turn comes, so an exporter
  // holds one tensor's bytes at a time, not the file's.
  std::function<void(uint8_t* out)> fill;
};

struct F32TensorView {
  std::string name;
  std::vector<int64_t> shape;  // product = number of floats at data
  const float* data = nullptr;
};

enum class StoredDType { kF32, kBF16 };

// Bytes of tensor data written so far and in all, after each tensor (a command's progress bar).
using WriteProgress = std::function<void(int64_t done_bytes, int64_t total_bytes)>;

// Writes `tensors` (names must be unique) to `path`, replacing it only once all is written (the
// bytes go to PATH.partial first, removed on failure). metadata goes into
// "__metadata__" (the reference writer's {"format": "pt"} when empty).
Status write_safetensors(const std::string& path, const std::vector<TensorBytesView>& tensors,
                         const std::map<std::string, std::string>& metadata = {}, const WriteProgress& progress = {});

Status write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata = {},
                             StoredDType stored = StoredDType::kF32);

}  // namespace moepp
