// exp in f32 by a fixed sequence of IEEE float operations, so that the SIMD kernels
// (KernelSet::exp_sum) compute the same bits as this scalar reference, lane for lane. libm's
// expf cannot be vectorised with its bits, and softmax over attention scores and the experts'
// SiLU call exp for every score and every hidden unit. At most 1.01 ulp from the exact value
// (measured over every 7th float in [-110, 90]; the unit test sweeps a coarser grid).
//
// exp(x) = 2^n * e^r with n = nearest(x / ln 2) and r = x - n ln 2 (two fma steps, ln 2 split
// in a 9-bit head and a tail), e^r by the Cephes expf polynomial on |r| <= ln 2 / 2, and 2^n
// applied in two halves so that results in the subnormal range or past the largest float are
// rounded once, as the exact value would be.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace moepp {

namespace exp_f32_constants {
constexpr float kMin = -104.0f;  // exp(-104) < half the smallest subnormal: rounds to 0
constexpr float kMax = 88.8f;    // exp(88.8) > the largest float: rounds to inf
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kRound = 0x1.8p23f;  // t + kRound - kRound rounds t to the nearest integer (ties to even)
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_f32_constants

inline float exp_f32(float x) {
  namespace c = exp_f32_constants;
  if (std::isnan(x)) return x;
  const float xc = std::min(std::max(x, c::kMin), c::kMax);
  const float n = (xc * c::kLog2e + c::kRound) - c::kRound;
  float r = std::fma(n, -c::kLn2Hi, xc);
  r = std::fma(n, -c::kLn2Lo, r);
  float poly = c::kP[0];
  for (int i = 1; i < 6; ++i) poly = std::fma(poly, r, c::kP[i]);
  const float e_r = std::fma(poly, r * r, r) + 1.0f;
  const int32_t ni = static_cast<int32_t>(n), n1 = ni >> 1, n2 = ni - n1;  // n in [-150, 128]
  const float s1 = std::bit_cast<float>((n1 + 127) << 23), s2 = std::bit_cast<float>((n2 + 127) << 23);
  return (e_r * s1) * s2;
}

// SiLU with this exp: the scalar reference of KernelSet::silu and of the experts' SwiGLU.
inline float silu(float x) { return x / (1.0f + exp_f32(-x)); }

}  // namespace moepp
