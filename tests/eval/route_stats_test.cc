// Route statistics on hand-made routing records: counts, shares, variances, groups.
#include "eval/route_stats.h"

#include <gtest/gtest.h>

namespace moepp {
namespace {

// 2 layers, 3 tokens, top-2; experts 0,1 ffn, 2 zero, 3 copy.
RouteRecord make_record() {
  RouteRecord r;
  r.n_layers = 2;
  r.n_tokens = 3;
  r.top_k = 2;
  const std::vector<ExpertKind> kinds = {ExpertKind::kFfn, ExpertKind::kFfn, ExpertKind::kZero, ExpertKind::kCopy};
  r.kinds = {kinds, kinds};
  // layer 0: t0 {0,1}, t1 {0,2}, t2 {2,3}; layer 1: t0 {1,0}, t1 {3,2}, t2 {0,3}
  r.experts = {0, 1, 0, 2, 2, 3, 1, 0, 3, 2, 0, 3};
  r.weights = {0.6f, 0.4f, 1.0f, 0.0f, 0.5f, 0.5f, 0.7f, 0.3f, 0.8f, 0.2f, 0.9f, 0.1f};
  return r;
}

TEST(RouteStats, FfnCountsPerTokenAndLayer) {
  const RouteStats s = compute_route_stats(make_record(), {});
  EXPECT_EQ(s.ffn_count, (std::vector<int32_t>{2, 1, 0, 2, 0, 1}));
  ASSERT_EQ(s.ffn_per_token.size(), 3u);
  EXPECT_DOUBLE_EQ(s.ffn_per_token[0], 2.0);
  EXPECT_DOUBLE_EQ(s.ffn_per_token[1], 0.5);
  EXPECT_DOUBLE_EQ(s.ffn_per_token[2], 0.5);
  EXPECT_DOUBLE_EQ(s.mean_ffn, 1.0);
  EXPECT_DOUBLE_EQ(s.layers[0].mean_ffn, 1.0);
  EXPECT_DOUBLE_EQ(s.layers[1].mean_ffn, 1.0);
  // totals over layers: 4, 1, 1 -> histogram over [0, 4]
  EXPECT_EQ(s.ffn_histogram, (std::vector<int64_t>{0, 2, 0, 0, 1}));
}

TEST(RouteStats, LoadAndKindShares) {
  const RouteStats s = compute_route_stats(make_record(), {});
  EXPECT_EQ(s.layers[0].load, (std::vector<int64_t>{2, 1, 2, 1}));
  EXPECT_EQ(s.layers[1].load, (std::vector<int64_t>{2, 1, 1, 2}));
  EXPECT_DOUBLE_EQ(s.layers[0].kind_share[0], 0.5);      // ffn 3/6
  EXPECT_DOUBLE_EQ(s.layers[0].kind_share[1], 2.0 / 6);  // zero
  EXPECT_DOUBLE_EQ(s.layers[0].kind_share[2], 1.0 / 6);  // copy
  EXPECT_DOUBLE_EQ(s.layers[0].kind_share[3], 0.0);      // constant
  EXPECT_DOUBLE_EQ(s.kind_share[0], 6.0 / 12);
  EXPECT_DOUBLE_EQ(s.kind_share[1], 3.0 / 12);
  EXPECT_DOUBLE_EQ(s.kind_share[2], 3.0 / 12);
}

TEST(RouteStats, WeightVariances) {
  const RouteStats s = compute_route_stats(make_record(), {});
  // layer 0 weights {0.6, 0.4, 1, 0, 0.5, 0.5}: mean 0.5, var = (0.01+0.01+0.25+0.25+0+0)/6
  EXPECT_NEAR(s.layers[0].weight_mean, 0.5, 1e-7);
  EXPECT_NEAR(s.layers[0].weight_var, 0.52 / 6, 1e-7);
  // top-1 weights {0.6, 1, 0.5}: mean 0.7, var ((0.01 + 0.09 + 0.04) / 3)
  EXPECT_NEAR(s.layers[0].top1_mean, 0.7, 1e-7);
  EXPECT_NEAR(s.layers[0].top1_var, 0.14 / 3, 1e-7);
}

TEST(RouteStats, RouterScoreVarianceIsTheMeanOverTokens) {
  RouteRecord r = make_record();
  r.score_var = {0.01f, 0.02f, 0.06f, 0.1f, 0.0f, 0.2f};  // [layer, token]
  const RouteStats s = compute_route_stats(r, {});
  EXPECT_NEAR(s.layers[0].score_var, 0.03, 1e-7);
  EXPECT_NEAR(s.layers[1].score_var, 0.1, 1e-7);
}

TEST(RouteStats, GroupsByTokenAndClass) {
  std::vector<TokenInfo> tokens = {{5, "\xE2\x96\x81the", TokenClass::kWordStart},
                                   {7, "ing", TokenClass::kFragment},
                                   {5, "\xE2\x96\x81the", TokenClass::kWordStart}};
  const RouteStats s = compute_route_stats(make_record(), tokens);
  ASSERT_EQ(s.by_token.size(), 2u);
  EXPECT_EQ(s.by_token[0].id, 7);  // 0.5 FFN experts
  EXPECT_DOUBLE_EQ(s.by_token[0].mean_ffn, 0.5);
  EXPECT_EQ(s.by_token[1].id, 5);  // (2 + 0.5) / 2
  EXPECT_EQ(s.by_token[1].count, 2);
  EXPECT_DOUBLE_EQ(s.by_token[1].mean_ffn, 1.25);
  ASSERT_EQ(s.by_class.size(), 2u);
  EXPECT_EQ(s.by_class[0].label, "word_start");
  EXPECT_EQ(s.by_class[1].label, "fragment");
}

TEST(RouteStats, PaddedSlotsAreSkipped) {
  RouteRecord r = make_record();
  r.experts[1] = -1;  // a layer with a smaller top_k pads with -1
  const RouteStats s = compute_route_stats(r, {});
  EXPECT_EQ(s.ffn_count[0], 1);
  EXPECT_EQ(s.layers[0].load[1], 0);
}

TEST(TokenClass, Pieces) {
  EXPECT_EQ(classify_piece("\xE2\x96\x81house", false), TokenClass::kWordStart);
  EXPECT_EQ(classify_piece("\xC4\xA0house", false), TokenClass::kWordStart);
  EXPECT_EQ(classify_piece("ing", false), TokenClass::kFragment);
  EXPECT_EQ(classify_piece(",", false), TokenClass::kPunctuation);
  EXPECT_EQ(classify_piece("\xE2\x96\x81", false), TokenClass::kPunctuation);
  EXPECT_EQ(classify_piece("\xE2\x96\x81" "42", false), TokenClass::kNumber);
  EXPECT_EQ(classify_piece("<0x0A>", false), TokenClass::kByte);
  EXPECT_EQ(classify_piece("<s>", true), TokenClass::kSpecial);
  EXPECT_EQ(classify_piece("", false), TokenClass::kUnknown);
}

}  // namespace
}  // namespace moepp
