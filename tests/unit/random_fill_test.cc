// Random weights of shapes built without a checkpoint: the moments of a normal, bounded tails,
// bf16 rounding, and values that depend on (seed, index) only, however a fill is split.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tensor/random_fill.h"

namespace moepp {
namespace {

TEST(RandomFill, HasTheMeanAndSpreadOfTheNormalAsked) {
  const int64_t n = 1 << 20;
  std::vector<float> v(n);
  fill_random_normal(7, 0.5f, 0.02f, DType::kF32, v.data(), n);
  double sum = 0, sq = 0, fourth = 0;
  float lo = v[0], hi = v[0];
  for (float x : v) {
    sum += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  const double mean = sum / n;
  for (float x : v) {
    sq += (x - mean) * (x - mean);
    fourth += std::pow((x - mean) / 0.02, 4);
  }
  EXPECT_NEAR(mean, 0.5, 1e-4);
  EXPECT_NEAR(std::sqrt(sq / n), 0.02, 1e-4);
  EXPECT_NEAR(fourth / n, 2.7, 0.03);  // Irwin-Hall(4): kurtosis 3 - 6 / (5 * 4) (a normal's is 3)
  EXPECT_GE(lo, 0.5f - 3.47f * 0.02f);
  EXPECT_LE(hi, 0.5f + 3.47f * 0.02f);
  EXPECT_LT(lo, 0.5f - 3.0f * 0.02f);  // the tails are there
}

TEST(RandomFill, ValuesDependOnSeedAndIndexOnly) {
  const int64_t big = (int64_t{1} << 23) + 5;  // split over threads where there are several
  std::vector<float> whole(big), head(1000);
  fill_random_normal(11, 0.0f, 1.0f, DType::kF32, whole.data(), big);
  fill_random_normal(11, 0.0f, 1.0f, DType::kF32, head.data(), 1000);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(whole[i], head[i]) << i;
  std::vector<float> other(1000);
  fill_random_normal(12, 0.0f, 1.0f, DType::kF32, other.data(), 1000);
  int same = 0;
  for (int i = 0; i < 1000; ++i) same += other[i] == head[i];
  EXPECT_LT(same, 10);
  std::vector<uint16_t> bf16(1000);
  fill_random_normal(11, 0.0f, 1.0f, DType::kBF16, bf16.data(), 1000);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bf16[i], f32_to_bf16(head[i])) << i;
  std::vector<float> constant(100);
  fill_random_normal(11, 1.0f, 0.0f, DType::kF32, constant.data(), 100);
  for (float x : constant) ASSERT_EQ(x, 1.0f);
}

}  // namespace
}  // namespace moepp
