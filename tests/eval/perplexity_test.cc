// Sliding windows as Hugging Face's guide lays them out, and the NLL summary.
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moepp {
namespace {

TEST(Perplexity, WindowsScoreEachTokenAtMostOnce) {
  for (int64_t n : {2, 5, 17, 64}) {
    for (int64_t ctx : {2, 4, 8}) {
      for (int64_t stride = 1; stride <= ctx; ++stride) {
        auto w = sliding_windows(n, ctx, stride);
        ASSERT_TRUE(w.ok());
        std::vector<int> scored(static_cast<size_t>(n), 0);
        for (const Window& x : *w) {
          EXPECT_LE(x.end - x.begin, ctx);
          EXPECT_GT(x.score_from, x.begin);
          for (int64_t p = x.score_from; p < x.end; ++p) ++scored[p];
        }
        EXPECT_EQ(scored[0], 0);
        // HF's layout: with stride == ctx a window's first token has no context and is skipped.
        std::vector<int> starts(static_cast<size_t>(n), 0);
        for (const Window& x : *w) starts[x.begin] = 1;
        for (int64_t p = 1; p < n; ++p)
          EXPECT_EQ(scored[p], stride == ctx && starts[p] ? 0 : 1) << n << " " << ctx << " " << stride << " " << p;
        EXPECT_EQ(w->back().end, n);
      }
    }
  }
}

TEST(Perplexity, HfLayout) {
  // n=10, ctx=4, stride=2: windows [0,4) [2,6) [4,8) [6,10), each scoring its last 2 tokens
  auto w = sliding_windows(10, 4, 2);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0].score_from, 1);
  EXPECT_EQ((*w)[1].begin, 2);
  EXPECT_EQ((*w)[1].score_from, 4);
  EXPECT_EQ((*w)[3].end, 10);
}

TEST(Perplexity, BadSettings) {
  EXPECT_FALSE(sliding_windows(10, 4, 5).ok());
  EXPECT_FALSE(sliding_windows(10, 4, 0).ok());
  EXPECT_FALSE(sliding_windows(10, 1, 1).ok());
  EXPECT_FALSE(sliding_windows(1, 4, 2).ok());
}

TEST(Perplexity, Summary) {
  const NllSummary s = summarize_nll({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(s.mean_nll, 2.0);
  EXPECT_NEAR(s.nll_stderr, 1.0 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(s.ppl, std::exp(2.0), 1e-12);
  EXPECT_NEAR(s.ppl_stderr, std::exp(2.0) / std::sqrt(3.0), 1e-9);
}

}  // namespace
}  // namespace moepp
