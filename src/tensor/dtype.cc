// dtype sizes, names and scalar conversions.
#include "tensor/dtype.h"

#include <cmath>

#include "platform/simd_clones.h"

namespace moepp {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64: return 8;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16: return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  float value;
  if (exp == 0) {
    value = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal
  } else if (exp == 31) {
    value = man == 0 ? INFINITY : NAN;
  } else {
    value = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -value : value;
}

float load_as_f32(const uint8_t* data, DType dtype, size_t i) {
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, data + 4 * i, 4);
      return f;
    }
    case DType::kBF16: {
      uint16_t b;
      std::memcpy(&b, data + 2 * i, 2);
      return bf16_to_f32(b);
    }
    case DType::kF16: {
      uint16_t b;
      std::memcpy(&b, data + 2 * i, 2);
      return f16_to_f32(b);
    }
    case DType::kF64: {
      double d;
      std::memcpy(&d, data + 8 * i, 8);
      return static_cast<float>(d);
    }
    default: return NAN;
  }
}

// Cloned per SIMD width (platform/simd_clones.h): each element is independent.
MOEPP_SIMD_CLONES
void round_bf16_inplace(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
}

}  // namespace moepp
