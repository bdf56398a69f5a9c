// Element types of checkpoint tensors and the scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace moepp {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", ...

inline float bf16_to_f32(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as PyTorch's float -> bfloat16 cast does (NaN stays NaN).
// Written without a branch (a select) so that loops of it vectorise.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t nan = (u >> 16) | 0x40u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// Rounds an f32 to the nearest bf16 value and back: emulates a PyTorch bf16 tensor op output.
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }
// round_bf16 on n values in place, vectorised for the widest SIMD the CPU has (the same bits).
void round_bf16_inplace(float* x, size_t n);

float f16_to_f32(uint16_t bits);

// Reads element `i` of a little-endian buffer of `dtype` as f32 (floating dtypes only).
float load_as_f32(const uint8_t* data, DType dtype, size_t i);

}  // namespace moepp
