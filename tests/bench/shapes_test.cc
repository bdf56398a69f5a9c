// Named shapes have the parameter counts the paper implies (docs/moepp-spec.md §1.5, §4.3).
#include <gtest/gtest.h>

#include "bench/shapes.h"
#include "models/model.h"

namespace moepp {
namespace {

ShapeParams params_of(const std::string& name) {
  auto c = shape_config(name);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return shape_params(*c);
}

TEST(Shapes, MoePP7BMatchesTheReleasedCheckpoint) {
  EXPECT_EQ(params_of("moepp-7b").total, 7676619648LL);  // spec §1.5, exact
  auto c = shape_config("moepp-7b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->layers[0].n_experts(), 20);
  EXPECT_EQ(c->layers[0].count(ExpertKind::kFfn), 16);
  EXPECT_EQ(c->layers[0].count(ExpertKind::kZero), 1);
  EXPECT_EQ(c->layers[0].count(ExpertKind::kCopy), 1);
  EXPECT_EQ(c->layers[0].count(ExpertKind::kConstant), 2);
  EXPECT_EQ(c->layers[0].kinds.back(), ExpertKind::kZero);  // the reference finds it at N-1
  EXPECT_EQ(c->layers[0].router.network, RouterNetwork::kLinear);
  EXPECT_TRUE(c->layers[0].router.logit_std_norm);
  EXPECT_FLOAT_EQ(c->layers[0].input_scale, 1.0f);
}

TEST(Shapes, PaperTotalsAndActive) {
  // Table 2: 0.6B / 1B / 2B total, "<= 0.2B" activated (excluding embedding and lm_head).
  struct Want {
    const char* name;
    double total_b;
  };
  for (const Want& w : {Want{"moepp-0.6b", 0.6}, Want{"moepp-1b", 1.0}, Want{"moepp-2b", 2.0}, Want{"moe-0.6b", 0.6},
                        Want{"moe-1b", 1.0}, Want{"moe-2b", 2.0}}) {
    const ShapeParams p = params_of(w.name);
    EXPECT_NEAR(p.total / 1e9, w.total_b, 0.1 * w.total_b) << w.name;
    const double embed_and_head = 2.0 * 65536 * 768;
    EXPECT_LT((p.active_max - embed_and_head) / 1e9, 0.2) << w.name;
  }
  EXPECT_EQ(shape_config("moepp-2b")->layers[0].count(ExpertKind::kConstant), 6);
  EXPECT_EQ(shape_config("moe-1b")->layers[0].n_experts(), 16);
}

TEST(Shapes, MixtralStyle) {
  auto c = shape_config("mixtral-1.8b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->d_model, 1024);
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->vocab_size, 32000);
  const ShapeParams p = shape_params(*c);
  EXPECT_NEAR(p.total / 1e9, 1.8, 0.05);
  // About 0.5B active per token (attention, 2 of 8 experts, lm_head; the embedding row is a lookup).
  EXPECT_NEAR((p.active_max - 32000.0 * 1024) / 1e9, 0.5, 0.05);
}

TEST(Shapes, CountsAgreeWithABuiltModel) {
  for (const char* name : {"moepp-0.6b", "mixtral-1.8b"}) {
    auto c = shape_config(name, 1);
    ASSERT_TRUE(c.ok());
    c->vocab_size = 64;  // keep the random weights small
    for (MoeLayerSpec& s : c->layers)
      for (int64_t& w : s.ffn_width)
        if (w > 0) w = 64;
    auto m = Model::random(*c, 1, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(shape_params(*c).total, m.value()->param_counts().total) << name;
    EXPECT_EQ(shape_params(*c).active_max, m.value()->param_counts().active_max) << name;
  }
}

TEST(Shapes, LayersCapAndTwins) {
  EXPECT_EQ(shape_config("moepp-1b", 3)->n_layers, 3);
  EXPECT_EQ(shape_config("moepp-1b", 100)->n_layers, 12);
  EXPECT_FALSE(shape_config("moepp-3b").ok());
  EXPECT_EQ(*vanilla_twin("moepp-2b"), "moe-2b");
  EXPECT_FALSE(vanilla_twin("mixtral-1.8b").ok());
  EXPECT_EQ(shape_names().size(), 9u);
}

}  // namespace
}  // namespace moepp
