// Counter-based normal-ish random fill (see random_fill.h).
#include "tensor/random_fill.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace moepp {
namespace {

// SplitMix64's output function: a bijective mix of a 64-bit counter (Steele, Lea, Flood 2014).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Four 16-bit uniforms of one 64-bit draw, summed: mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12.
inline float unit_normal(uint64_t bits) {
  const uint32_t sum = static_cast<uint32_t>(bits & 0xffff) + static_cast<uint32_t>((bits >> 16) & 0xffff) +
                       static_cast<uint32_t>((bits >> 32) & 0xffff) + static_cast<uint32_t>(bits >> 48);
  constexpr double kMean = 4 * 32767.5;
  const double kInvStd = 1.0 / std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
  return static_cast<float>((static_cast<double>(sum) - kMean) * kInvStd);
}

void fill_range(uint64_t key, float mean, float stddev, DType dtype, void* out, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = stddev == 0.0f ? mean : mean + stddev * unit_normal(mix64(key + static_cast<uint64_t>(i)));
    if (dtype == DType::kF32) static_cast<float*>(out)[i] = v;
    else static_cast<uint16_t*>(out)[i] = f32_to_bf16(v);
  }
}

}  // namespace

void fill_random_normal(uint64_t seed, float mean, float stddev, DType dtype, void* out, int64_t n) {
  // Fills are keyed by seed: consecutive counters of different fills must not overlap, so the
  // seed is mixed into a start point far from the others'.
  const uint64_t key = mix64(seed ^ 0x9e3779b97f4a7c15ull);
  constexpr int64_t kPerThread = int64_t{1} << 22;  // below this, threads cost more than they save
  const int64_t threads = std::clamp<int64_t>(n / kPerThread, 1, std::max(1u, std::thread::hardware_concurrency()));
  if (threads == 1) return fill_range(key, mean, stddev, dtype, out, 0, n);
  std::vector<std::thread> workers;
  for (int64_t t = 0; t < threads; ++t)
    workers.emplace_back(fill_range, key, mean, stddev, dtype, out, n * t / threads, n * (t + 1) / threads);
  for (std::thread& w : workers) w.join();
}

}  // namespace moepp
