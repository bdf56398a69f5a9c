// Invariants of the MoE layer: the grouped path equals a per-token loop, zero/copy/constant
// experts compute exactly their formulas, skewed and empty expert loads, dense = 1-expert MoE.
#include <gtest/gtest.h>

#include <cmath>

#include "moe/dispatch.h"
#include "moe/moe_layer.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "tensor/quantize.h"
#include "test_util.h"

namespace moepp {
namespace {

constexpr int64_t kD = 24;

struct Layer {
  MoeLayerSpec spec;
  MoeLayerWeights w;
};

// A MoE++-style layer: n_ffn FFN experts (odd widths, 13 + width_step * e) then 2 constant,
// 1 copy, 1 zero.
Layer make_layer(std::mt19937& rng, int n_ffn, float router_scale, int width_step = 4) {
  Layer l;
  for (int e = 0; e < n_ffn; ++e) {
    l.spec.kinds.push_back(ExpertKind::kFfn);
    l.spec.ffn_width.push_back(13 + width_step * e);
  }
  for (ExpertKind k : {ExpertKind::kConstant, ExpertKind::kConstant, ExpertKind::kCopy, ExpertKind::kZero}) {
    l.spec.kinds.push_back(k);
    l.spec.ffn_width.push_back(0);
  }
  const int64_t n = l.spec.n_experts();
  l.spec.router.compute_in_f32 = true;
  l.spec.router.gating_residual = true;
  l.spec.router.logit_std_norm = true;
  l.spec.router.zero_expert_gets_no_weight = true;
  l.w.router.w1 = testing::random_weight(rng, n, kD, router_scale);
  l.w.router.gate_map = testing::random_weight(rng, n, n, 0.3f);
  l.w.experts.resize(n);
  for (int64_t e = 0; e < n; ++e) {
    if (l.spec.kinds[e] == ExpertKind::kFfn) {
      l.w.experts[e].gate_up = testing::random_weight(rng, 2 * l.spec.ffn_width[e], kD, 0.3f);
      l.w.experts[e].down = testing::random_weight(rng, kD, l.spec.ffn_width[e], 0.3f);
    } else if (l.spec.kinds[e] == ExpertKind::kConstant) {
      l.w.experts[e].constant_gate = testing::random_weight(rng, 2, kD, 0.3f);
      l.w.experts[e].constant_value = testing::random_weight(rng, 1, kD, 1.0f);
    }
  }
  return l;
}

// Straight from the formulas, one token at a time: the oracle.
std::vector<float> expert_output(const Layer& l, int64_t e, const float* x) {
  std::vector<float> out(kD, 0.0f);
  const ExpertWeights& w = l.w.experts[e];
  switch (l.spec.kinds[e]) {
    case ExpertKind::kZero: break;
    case ExpertKind::kCopy: out.assign(x, x + kD); break;
    case ExpertKind::kConstant: {
      float a[2] = {0, 0};
      for (int j = 0; j < 2; ++j)
        for (int64_t i = 0; i < kD; ++i) a[j] += w.constant_gate.at(j, i) * x[i];
      const float m = std::max(a[0], a[1]);
      const float e0 = std::exp(a[0] - m), e1 = std::exp(a[1] - m);
      for (int64_t i = 0; i < kD; ++i) out[i] = e0 / (e0 + e1) * x[i] + e1 / (e0 + e1) * w.constant_value.at(0, i);
      break;
    }
    case ExpertKind::kFfn: {
      const int64_t de = l.spec.ffn_width[e];
      std::vector<float> act(de);
      for (int64_t j = 0; j < de; ++j) {
        float g = 0, u = 0;
        for (int64_t i = 0; i < kD; ++i) {
          g += w.gate_up.at(j, i) * x[i];
          u += w.gate_up.at(de + j, i) * x[i];
        }
        act[j] = g / (1 + std::exp(-g)) * u;
      }
      for (int64_t i = 0; i < kD; ++i)
        for (int64_t j = 0; j < de; ++j) out[i] += w.down.at(i, j) * act[j];
      break;
    }
  }
  return out;
}

TEST(MoeLayer, GroupedPathEqualsPerTokenFormulas) {
  std::mt19937 rng(7);
  const Layer l = make_layer(rng, 5, 2.0f);
  ThreadPool pool(2);
  const int64_t n = 40;
  const int64_t ne = l.spec.n_experts();
  std::vector<float> x = testing::random_vector(rng, n * kD);
  std::vector<float> prev = testing::random_vector(rng, n * ne);
  std::vector<float> x_in = x, raw(n * ne), y(n * kD);
  RoutingPlan plan;
  moe_forward(pool, l.spec, l.w, x_in.data(), n, kD, prev.data(), raw.data(), &plan, y.data(), Precision{});

  std::vector<int> kinds_seen(4, 0);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> expect(kD, 0.0f);
    for (int j = 0; j < plan.top_k; ++j) {
      const int32_t e = plan.experts[t * plan.top_k + j];
      ++kinds_seen[static_cast<int>(l.spec.kinds[e])];
      const std::vector<float> out = expert_output(l, e, &x[t * kD]);
      for (int64_t i = 0; i < kD; ++i) expect[i] += plan.weights[t * plan.top_k + j] * out[i];
    }
    for (int64_t i = 0; i < kD; ++i) EXPECT_NEAR(y[t * kD + i], expect[i], 1e-4f) << "token " << t;
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(kinds_seen[k], 0) << "expert kind " << k << " never chosen";
}

TEST(MoeLayer, ZeroExpertGivesPartnerFullWeight) {
  std::mt19937 rng(11);
  const Layer l = make_layer(rng, 3, 3.0f);
  ThreadPool pool(1);
  const int64_t n = 64, ne = l.spec.n_experts();
  std::vector<float> x = testing::random_vector(rng, n * kD), raw(n * ne), y(n * kD);
  RoutingPlan plan;
  moe_forward(pool, l.spec, l.w, x.data(), n, kD, nullptr, raw.data(), &plan, y.data(), Precision{});
  int with_zero = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t a = plan.experts[2 * t], b = plan.experts[2 * t + 1];
    if (l.spec.kinds[a] == ExpertKind::kZero || l.spec.kinds[b] == ExpertKind::kZero) {
      ++with_zero;
      const int zero_slot = l.spec.kinds[a] == ExpertKind::kZero ? 0 : 1;
      EXPECT_EQ(plan.weights[2 * t + zero_slot], 0.0f);
      EXPECT_EQ(plan.weights[2 * t + 1 - zero_slot], 1.0f);
    } else {
      EXPECT_NEAR(plan.weights[2 * t] + plan.weights[2 * t + 1], 1.0f, 1e-6f);
    }
  }
  EXPECT_GT(with_zero, 0);
}

TEST(MoeLayer, GatingResidualAddsGateMapOfPreviousLogits) {
  std::mt19937 rng(3);
  const Layer l = make_layer(rng, 4, 1.0f);
  ThreadPool pool(1);
  const int64_t n = 5, ne = l.spec.n_experts();
  std::vector<float> x = testing::random_vector(rng, n * kD), prev = testing::random_vector(rng, n * ne);
  std::vector<float> with(n * ne), without(n * ne);
  RoutingPlan plan;
  route(pool, l.spec, l.w.router, x.data(), n, prev.data(), with.data(), &plan, Precision{});
  route(pool, l.spec, l.w.router, x.data(), n, nullptr, without.data(), &plan, Precision{});
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < ne; ++e) {
      float r = 0;
      for (int64_t j = 0; j < ne; ++j) r += l.w.router.gate_map.at(e, j) * prev[t * ne + j];
      EXPECT_NEAR(with[t * ne + e], without[t * ne + e] + r, 1e-5f);
    }
}

TEST(MoeLayer, RouterScoresAreTheDistributionTheChoiceComesFrom) {
  std::mt19937 rng(4);
  const Layer l = make_layer(rng, 4, 1.0f);
  ThreadPool pool(1);
  const int64_t n = 7, ne = l.spec.n_experts();
  std::vector<float> x = testing::random_vector(rng, n * kD), raw(n * ne);
  RoutingPlan plan;
  route(pool, l.spec, l.w.router, x.data(), n, nullptr, raw.data(), &plan, Precision{});
  ASSERT_EQ(plan.scores.size(), static_cast<size_t>(n * ne));
  for (int64_t t = 0; t < n; ++t) {
    const float* s = plan.scores.data() + t * ne;
    double sum = 0;
    for (int64_t e = 0; e < ne; ++e) sum += s[e];
    EXPECT_NEAR(sum, 1.0, 1e-5);
    // Softmax-then-top-k: the chosen experts hold the highest scores, in order.
    for (int k = 0; k < plan.top_k; ++k) {
      const int32_t chosen = plan.experts[t * plan.top_k + k];
      for (int64_t e = 0; e < ne; ++e) {
        bool earlier = false;
        for (int j = 0; j < k; ++j) earlier |= plan.experts[t * plan.top_k + j] == e;
        if (!earlier) {
          EXPECT_GE(s[chosen], s[e]) << "token " << t << " slot " << k;
        }
      }
    }
    // Scores follow the raw logits' order (the std normalisation divides by a positive scale).
    for (int64_t e = 1; e < ne; ++e)
      EXPECT_EQ(s[e] > s[0], raw[t * ne + e] > raw[t * ne]) << "token " << t;
  }
}

TEST(MoeLayer, AllTokensToOneExpertAndEmptyExperts) {
  std::mt19937 rng(5);
  Layer l = make_layer(rng, 4, 1.0f);
  // A router that always prefers expert 2 then expert 0: rows of zeros plus a bias-like input.
  const int64_t ne = l.spec.n_experts();
  l.w.router.w1 = make_owned_weight(DType::kF32, ne, kD);
  float* r = static_cast<float*>(const_cast<void*>(l.w.router.w1.data));
  std::fill(r, r + ne * kD, 0.0f);
  r[2 * kD + 0] = 5.0f;
  r[0 * kD + 0] = 4.0f;
  l.spec.router.logit_std_norm = false;
  ThreadPool pool(2);
  const int64_t n = 9;
  std::vector<float> x = testing::random_vector(rng, n * kD);
  for (int64_t t = 0; t < n; ++t) x[t * kD] = 1.0f + 0.1f * t;  // positive feature 0
  std::vector<float> x0 = x, raw(n * ne), y(n * kD);
  RoutingPlan plan;
  moe_forward(pool, l.spec, l.w, x.data(), n, kD, nullptr, raw.data(), &plan, y.data(), Precision{});
  const Dispatch d = dispatch_by_expert(l.spec, plan);
  EXPECT_EQ(d.offsets[3] - d.offsets[2], n);  // every token on expert 2
  EXPECT_EQ(d.offsets[1] - d.offsets[0], n);  // and on expert 0
  EXPECT_EQ(d.offsets[2] - d.offsets[1], 0);  // experts 1 and 3 idle
  for (int64_t t = 0; t < n; ++t) {
    const auto o2 = expert_output(l, 2, &x0[t * kD]);
    const auto o0 = expert_output(l, 0, &x0[t * kD]);
    for (int64_t i = 0; i < kD; ++i)
      EXPECT_NEAR(y[t * kD + i], plan.weights[2 * t] * o2[i] + plan.weights[2 * t + 1] * o0[i], 1e-4f);
  }
}

TEST(MoeLayer, DenseFfnIsOneExpertMoe) {
  std::mt19937 rng(9);
  MoeLayerSpec spec;
  spec.kinds = {ExpertKind::kFfn};
  spec.ffn_width = {17};
  spec.router.top_k = 1;
  MoeLayerWeights w;
  w.router.w1 = testing::random_weight(rng, 1, kD, 1.0f);
  w.experts.resize(1);
  w.experts[0].gate_up = testing::random_weight(rng, 34, kD, 0.3f);
  w.experts[0].down = testing::random_weight(rng, kD, 17, 0.3f);
  Layer l{spec, w};
  ThreadPool pool(1);
  const int64_t n = 6;
  std::vector<float> x = testing::random_vector(rng, n * kD), x0 = x, raw(n), y(n * kD);
  RoutingPlan plan;
  moe_forward(pool, spec, w, x.data(), n, kD, nullptr, raw.data(), &plan, y.data(), Precision{});
  for (int64_t t = 0; t < n; ++t) {
    EXPECT_EQ(plan.weights[t], 1.0f);  // softmax over one expert, renormalised
    const auto o = expert_output(l, 0, &x0[t * kD]);
    for (int64_t i = 0; i < kD; ++i) EXPECT_NEAR(y[t * kD + i], o[i], 1e-5f);
  }
}

TEST(MoeLayer, ResultsIndependentOfThreadCount) {
  std::mt19937 rng(13);
  const Layer l = make_layer(rng, 6, 2.0f);
  const int64_t n = 33, ne = l.spec.n_experts();
  const std::vector<float> x = testing::random_vector(rng, n * kD);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<float> xi = x, raw(n * ne), y(n * kD);
    RoutingPlan plan;
    moe_forward(pool, l.spec, l.w, xi.data(), n, kD, nullptr, raw.data(), &plan, y.data(), Precision{});
    outs.push_back(y);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
}

TEST(MoeLayer, BatchOfTokensEqualsTokensOneByOne) {
  std::mt19937 rng(17);
  const Layer l = make_layer(rng, 5, 2.0f);
  ThreadPool pool(2);
  const int64_t n = 12, ne = l.spec.n_experts();
  const std::vector<float> x = testing::random_vector(rng, n * kD);
  const std::vector<float> prev = testing::random_vector(rng, n * ne);
  std::vector<float> xb = x, raw(n * ne), y(n * kD);
  RoutingPlan plan;
  moe_forward(pool, l.spec, l.w, xb.data(), n, kD, prev.data(), raw.data(), &plan, y.data(), Precision{});
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> xt(x.begin() + t * kD, x.begin() + (t + 1) * kD), rt(ne), yt(kD);
    RoutingPlan pt;
    moe_forward(pool, l.spec, l.w, xt.data(), 1, kD, &prev[t * ne], rt.data(), &pt, yt.data(), Precision{});
    for (int64_t i = 0; i < kD; ++i) EXPECT_NEAR(yt[i], y[t * kD + i], 1e-5f);
  }
}

// Decode's schedule (moe/experts.cc): one pool job whose down tasks wait for their expert's
// gate+up tasks, one or two FFN experts per token, matrices split between 1, 2 or 3 threads.
// Every split and every weight format gives the single thread's bits.
TEST(MoeLayer, OneTokenGivesTheSameBitsForEveryThreadCount) {
  std::mt19937 rng(23);
  const Layer l = make_layer(rng, 6, 2.0f, /*width_step=*/0);
  const int64_t n = 16, ne = l.spec.n_experts();
  const std::vector<float> x = testing::random_vector(rng, n * kD);
  const std::vector<float> prev = testing::random_vector(rng, n * ne);
  for (WeightQuant quant : {WeightQuant::kNone, WeightQuant::kQ8, WeightQuant::kQ4}) {
    Layer lq = l;
    for (int64_t e = 0; e < ne; ++e) {
      if (l.spec.kinds[e] != ExpertKind::kFfn || quant == WeightQuant::kNone) continue;
      lq.w.experts[e].gate_up = interleave_rows(quantize_weight(l.w.experts[e].gate_up, quant).value());
      lq.w.experts[e].down = interleave_rows(quantize_weight(l.w.experts[e].down, quant).value());
    }
    int ffn_pairs = 0, ffn_singles = 0;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<std::vector<float>> outs;
      RoutingPlan plan;
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> xt(x.begin() + t * kD, x.begin() + (t + 1) * kD), raw(ne), y(kD);
        moe_forward(pool, lq.spec, lq.w, xt.data(), 1, kD, &prev[t * ne], raw.data(), &plan, y.data(), Precision{});
        outs.push_back(y);
      }
      int ffn = 0;
      for (int j = 0; j < plan.top_k; ++j) ffn += l.spec.kinds[plan.experts[j]] == ExpertKind::kFfn;
      ffn_pairs += ffn == 2;
      ffn_singles += ffn == 1;
      EXPECT_EQ(outs[0], outs[1]) << "token " << t << ", two threads";
      EXPECT_EQ(outs[0], outs[2]) << "token " << t << ", three threads";
      if (quant != WeightQuant::kNone) continue;
      std::vector<float> expect(kD, 0.0f);  // and the formulas, in f32
      for (int j = 0; j < plan.top_k; ++j) {
        const std::vector<float> out = expert_output(l, plan.experts[j], &x[t * kD]);
        for (int64_t i = 0; i < kD; ++i) expect[i] += plan.weights[j] * out[i];
      }
      for (int64_t i = 0; i < kD; ++i) EXPECT_NEAR(outs[0][i], expect[i], 1e-4f) << "token " << t;
    }
    EXPECT_GT(ffn_pairs, 0) << "no token on two FFN experts";
    EXPECT_GT(ffn_singles, 0) << "no token on one FFN expert";
  }
}

}  // namespace
}  // namespace moepp
