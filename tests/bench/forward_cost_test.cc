// Byte accounting counts only the experts selected, each once per forward; zero-computation
// experts read nothing.
#include <gtest/gtest.h>

#include "bench/forward_cost.h"
#include "bench/shapes.h"
#include "tiny_model.h"

namespace moepp {
namespace {

struct Tiny {
  std::unique_ptr<Model> model;
};

std::unique_ptr<Model> tiny(const char* shape) {
  testing::TinyShape t;
  t.shape = shape;
  t.layers = 1;
  t.vocab = 64;
  t.heads = 2;
  t.ffn = 96;
  t.load.dtype = ComputeDType::kBF16;
  return testing::tiny_model(t);
}

RoutingPlan plan_of(std::vector<int32_t> experts) {
  RoutingPlan p;
  p.top_k = 2;
  p.n_tokens = static_cast<int64_t>(experts.size()) / 2;
  p.experts = experts;
  p.weights.assign(experts.size(), 0.5f);
  return p;
}

TEST(ForwardCost, OnlySelectedExpertsOnce) {
  std::unique_ptr<Model> m = tiny("moepp-1b");  // experts 0..15 FFN, 16-17 constant, 18 copy, 19 zero
  const MoeLayerSpec& spec = m->config().layers[0];
  const MoeLayerWeights& w = m->weights().layers[0].moe;
  const double expert_bytes = static_cast<double>(w.experts[0].gate_up.nbytes() + w.experts[0].down.nbytes());
  EXPECT_EQ(expert_bytes, 3.0 * 64 * 96 * 2);  // bf16
  const double router_bytes = static_cast<double>(w.router.w1.nbytes());

  // Two tokens on experts {3, 5} and {3, 19}: experts 3 and 5 read once each; zero expert free.
  ForwardCost c = moe_layer_cost(spec, w, 64, plan_of({3, 5, 3, 19}), false);
  EXPECT_DOUBLE_EQ(c.bytes, router_bytes + 2 * expert_bytes);
  EXPECT_EQ(c.slots, 4);
  EXPECT_EQ(c.ffn_slots, 3);
  EXPECT_EQ(c.zc_slots, 1);
  EXPECT_DOUBLE_EQ(c.zc_share(), 0.25);
  // FLOPs count every FFN slot (3), not distinct experts.
  EXPECT_NEAR(c.flops, 2.0 * 2 * 64 * 20 + 3 * (2.0 * 3 * 64 * 96 + 4 * 96), 1.0);

  // All slots on copy / zero experts: only the router is read.
  ForwardCost z = moe_layer_cost(spec, w, 64, plan_of({18, 19, 19, 18}), false);
  EXPECT_DOUBLE_EQ(z.bytes, router_bytes);
  EXPECT_EQ(z.ffn_slots, 0);
  // A constant expert reads its two small vectors.
  ForwardCost k = moe_layer_cost(spec, w, 64, plan_of({16, 19}), false);
  EXPECT_DOUBLE_EQ(k.bytes, router_bytes + static_cast<double>(w.experts[16].constant_gate.nbytes() +
                                                                w.experts[16].constant_value.nbytes()));
  // The gating residual's gate_map is read from the second layer on.
  ForwardCost g = moe_layer_cost(spec, w, 64, plan_of({18, 19}), true);
  EXPECT_DOUBLE_EQ(g.bytes, router_bytes + static_cast<double>(w.router.gate_map.nbytes()));
}

TEST(ForwardCost, KernelsSplitTheLayerCost) {
  std::unique_ptr<Model> m = tiny("moepp-1b");  // experts 0..15 FFN, 16-17 constant, 18 copy, 19 zero
  const MoeLayerSpec& spec = m->config().layers[0];
  const MoeLayerWeights& w = m->weights().layers[0].moe;
  const double expert_bytes = static_cast<double>(w.experts[0].gate_up.nbytes() + w.experts[0].down.nbytes());
  const double slot_flops = 2.0 * 3 * 64 * 96 + 4 * 96;
  // Three tokens: {5, 3}, {3, 19}, {16, 3}. Kernels: router, expert 3 (3 slots), expert 5, constant 16.
  const RoutingPlan plan = plan_of({5, 3, 3, 19, 16, 3});
  const std::vector<ForwardCost> k = moe_layer_kernel_costs(spec, w, 64, plan, true);
  ASSERT_EQ(k.size(), 4u);
  const double router_bytes = static_cast<double>(w.router.w1.nbytes() + w.router.gate_map.nbytes());
  const double router_flops = 2.0 * 3 * (64 * 20 + 20 * 20);  // 3 tokens: w1 (20 x 64), gate_map (20 x 20)
  EXPECT_DOUBLE_EQ(k[0].bytes, router_bytes);
  EXPECT_NEAR(k[0].flops, router_flops, 1e-6);
  EXPECT_EQ(k[0].slots, 1);  // the zero expert's slot rides with the router
  EXPECT_EQ(k[0].zc_slots, 1);
  EXPECT_DOUBLE_EQ(k[1].bytes, expert_bytes);
  EXPECT_NEAR(k[1].flops, 3 * slot_flops, 1e-6);
  EXPECT_EQ(k[1].ffn_slots, 3);
  EXPECT_DOUBLE_EQ(k[2].bytes, expert_bytes);
  EXPECT_NEAR(k[2].flops, slot_flops, 1e-6);
  EXPECT_EQ(k[2].ffn_slots, 1);
  const ExpertWeights& constant = w.experts[16];
  EXPECT_DOUBLE_EQ(k[3].bytes, static_cast<double>(constant.constant_gate.nbytes() + constant.constant_value.nbytes()));
  EXPECT_NEAR(k[3].flops, 2.0 * 2 * 64 + 4 * 64, 1e-6);  // the gate's two rows of 64, then the mix
  EXPECT_EQ(k[3].zc_slots, 1);
  // The layer's cost, counted by hand: the split loses and adds nothing.
  const ForwardCost whole = moe_layer_cost(spec, w, 64, plan, true);
  EXPECT_DOUBLE_EQ(whole.bytes, router_bytes + 2 * expert_bytes + k[3].bytes);
  EXPECT_NEAR(whole.flops, router_flops + 4 * slot_flops + 2.0 * 2 * 64 + 4 * 64, 1e-6);
  EXPECT_EQ(whole.slots, 6);
  EXPECT_EQ(whole.ffn_slots, 4);
  EXPECT_EQ(whole.zc_slots, 2);
}

TEST(ForwardCost, RooflineTakesEachKernelsSlowerLimit) {
  ForwardCost read_bound, compute_bound;
  read_bound.bytes = 1e9;     // 0.1 s at 10 GB/s; 1e9 FLOP: 0.01 s at 100 GFLOP/s
  read_bound.flops = 1e9;
  compute_bound.bytes = 1e8;  // 0.01 s; 5e10 FLOP: 0.5 s
  compute_bound.flops = 5e10;
  EXPECT_NEAR(roofline_seconds({read_bound}, 10, 100), 0.1, 1e-12);
  EXPECT_NEAR(roofline_seconds({compute_bound}, 10, 100), 0.5, 1e-12);
  // Per kernel, not over the sums (which would give max(0.11, 0.51) = 0.51).
  EXPECT_NEAR(roofline_seconds({read_bound, compute_bound}, 10, 100), 0.6, 1e-12);
  EXPECT_EQ(roofline_seconds({read_bound}, 0, 100), 0);  // no limits measured
}

TEST(ForwardCost, WholeForwardMatchesPlans) {
  std::unique_ptr<Model> m = tiny("mixtral-1.8b");
  ThreadPool pool(1);
  KvCache cache = m->make_cache();
  ASSERT_TRUE(cache.bf16());  // a bf16 model's cache
  const int32_t seq = cache.add_sequence();
  CostCounter counter(*m);
  struct Plans : ForwardObserver {
    RoutingPlan last;
    void on_routing(int64_t, const Batch&, const RoutingPlan& p) override { last = p; }
  };
  // Decode one token: bytes = attention + norms + router + its 2 experts + embedding row + lm_head + KV.
  Batch b;
  b.add(7, 0, seq, true);
  counter.begin(b, cache);
  std::vector<float> logits;
  ASSERT_TRUE(m->forward(pool, b, cache, &logits, &counter).ok());
  const ForwardCost c = counter.end();
  const ModelWeights& w = m->weights();
  const LayerWeights& lw = w.layers[0];
  EXPECT_EQ(c.ffn_slots, 2);
  const double expert_bytes = static_cast<double>(lw.moe.experts[0].gate_up.nbytes() + lw.moe.experts[0].down.nbytes());
  const double want = static_cast<double>(lw.attention.q.nbytes() + lw.attention.k.nbytes() + lw.attention.v.nbytes() +
                                          lw.attention.o.nbytes() + lw.input_norm.nbytes() + lw.post_norm.nbytes() +
                                          lw.moe.router.w1.nbytes() + w.final_norm.nbytes() + w.lm_head.nbytes()) +
                      2 * expert_bytes + 64 * 2 /* embedding row */ + 2.0 * 1 * 2 * 32 * 2 /* K and V rows, bf16 */;
  EXPECT_DOUBLE_EQ(c.bytes, want);
  EXPECT_DOUBLE_EQ(counter.total().bytes, want);
}

}  // namespace
}  // namespace moepp
