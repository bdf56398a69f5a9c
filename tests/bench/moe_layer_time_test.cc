// bench --moe-time: the routing it reports is the model's own, and bad input is an error.
#include "bench/moe_layer_time.h"

#include <gtest/gtest.h>

#include "tiny_model.h"

namespace moepp {
namespace {

struct SlotCounter : ForwardObserver {
  const ModelConfig* c = nullptr;
  int64_t slots = 0, zc = 0, ffn = 0;
  void on_routing(int64_t layer, const Batch&, const RoutingPlan& plan) override {
    for (int32_t e : plan.experts) {
      ++slots;
      (c->layers[layer].kinds[e] == ExpertKind::kFfn ? ffn : zc) += 1;
    }
  }
};

TEST(MoeLayerTime, ReportsTheModelsOwnRouting) {
  testing::TinyShape t;
  t.layers = 3;
  auto m = testing::tiny_model(t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back((i * 37 + 5) % 300);
  auto r = time_moe_layers(*m, "tiny", ids, 1, 2);
  ASSERT_TRUE(r.ok()) << r.status().message();

  // The same tokens through a plain forward pass, counted independently.
  SlotCounter count;
  count.c = &m->config();
  KvCache cache = m->make_cache();
  const int32_t seq = cache.add_sequence();
  Batch b;
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], static_cast<int32_t>(i), seq, false);
  ThreadPool pool(1);
  ASSERT_TRUE(m->forward(pool, b, cache, nullptr, &count).ok())
      << "a forward pass without logits (cache and observer only) works";
  EXPECT_EQ(r->n_tokens, 40);
  EXPECT_EQ(r->n_layers, 3);
  EXPECT_DOUBLE_EQ(r->zc_share, static_cast<double>(count.zc) / count.slots);
  EXPECT_DOUBLE_EQ(r->ffn_slots_per_token, static_cast<double>(count.ffn) / (40.0 * 3));
  EXPECT_GT(count.zc, 0);
  EXPECT_GT(r->pp_tok_s, 0);
  EXPECT_GT(r->tg_tok_s, 0);
}

TEST(MoeLayerTime, RejectsEmptyAndTooLongInputs) {
  testing::TinyShape t;
  auto m = testing::tiny_model(t);
  EXPECT_FALSE(time_moe_layers(*m, "tiny", {}, 1, 1).ok());
  std::vector<int32_t> many(static_cast<size_t>(m->config().max_position_embeddings + 1), 3);
  auto r = time_moe_layers(*m, "tiny", many, 1, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("positions"), std::string::npos) << r.status().message();
}

TEST(MoeLayerTime, ForwardWithoutLogitsVectorIsAnErrorWhenLogitsAreAsked) {
  testing::TinyShape t;
  auto m = testing::tiny_model(t);
  KvCache cache = m->make_cache();
  const int32_t seq = cache.add_sequence();
  Batch b;
  b.add(3, 0, seq, true);
  ThreadPool pool(1);
  EXPECT_FALSE(m->forward(pool, b, cache, nullptr).ok());
}

}  // namespace
}  // namespace moepp
