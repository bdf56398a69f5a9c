// Sampler: greedy is argmax, seeds reproduce, top-k/top-p restrict the support, and sampled
// frequencies follow the softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/sampler.h"

namespace moepp {
namespace {

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s(SamplingParams{});
  const float logits[] = {0.1f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(logits, 4), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  const float logits[] = {0.1f, 0.5f, 0.3f, 0.2f, 0.4f};
  SamplingParams p{1.0f, 0, 1.0f, 42};
  Sampler a(p), b(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits, 5), b.sample(logits, 5));
}

TEST(Sampler, TopKAndTopPRestrictSupport) {
  const float logits[] = {3.0f, 2.9f, 0.0f, -1.0f, 2.8f};
  Sampler k2(SamplingParams{1.0f, 2, 1.0f, 1});
  for (int i = 0; i < 200; ++i) {
    const int t = k2.sample(logits, 5);
    EXPECT_TRUE(t == 0 || t == 1) << t;
  }
  // Probabilities ~[0.36, 0.33, 0.02, 0.01, 0.29]: top_p 0.5 keeps the first two.
  Sampler p(SamplingParams{1.0f, 0, 0.5f, 2});
  for (int i = 0; i < 200; ++i) {
    const int t = p.sample(logits, 5);
    EXPECT_TRUE(t == 0 || t == 1) << t;
  }
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  const float logits[] = {1.0f, 0.0f, -1.0f};
  const double z = std::exp(1.0) + 1.0 + std::exp(-1.0);
  const double expect[] = {std::exp(1.0) / z, 1.0 / z, std::exp(-1.0) / z};
  Sampler s(SamplingParams{1.0f, 0, 1.0f, 7});
  const int n = 20000;
  std::map<int, int> counts;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits, 3)];
  for (int t = 0; t < 3; ++t) {
    // 5 standard deviations of a binomial proportion: fails by chance about once in 10^6 runs.
    const double sd = std::sqrt(expect[t] * (1 - expect[t]) / n);
    EXPECT_NEAR(counts[t] / static_cast<double>(n), expect[t], 5 * sd) << "token " << t;
  }
}

TEST(Sampler, ValidateRejectsOutOfRange) {
  EXPECT_FALSE((SamplingParams{-1.0f, 0, 1.0f, 0}).validate().ok());
  EXPECT_FALSE((SamplingParams{1.0f, -3, 1.0f, 0}).validate().ok());
  EXPECT_FALSE((SamplingParams{1.0f, 0, 0.0f, 0}).validate().ok());
  EXPECT_FALSE((SamplingParams{1.0f, 0, 1.5f, 0}).validate().ok());
  EXPECT_NE((SamplingParams{1.0f, 0, 1.5f, 0}).validate().message().find("top_p"), std::string::npos);
  EXPECT_TRUE((SamplingParams{0.7f, 40, 0.9f, 0}).validate().ok());
}

}  // namespace
}  // namespace moepp
