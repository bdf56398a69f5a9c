// --zc-share biasing reaches roughly the requested share on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "bench/shapes.h"
#include "tiny_model.h"
#include "bench/zc_bias.h"
#include "moe/routing.h"

namespace moepp {
namespace {

std::unique_ptr<Model> tiny_moepp(int64_t layers) {
  testing::TinyShape t;
  t.shape = "moepp-1b";
  t.layers = layers;
  t.vocab = 512;
  t.d_model = 128;
  t.ffn = 64;
  t.seed = 3;
  return testing::tiny_model(t);
}

TEST(ZcBias, NormedHiddenStatesAreUnitVarianceAndBf16ValuesInABf16Forward) {
  const int64_t n = 64, d = 96;
  for (ComputeDType dtype : {ComputeDType::kF32, ComputeDType::kBF16}) {
    const Precision prec{dtype};
    const std::vector<float> x = normed_hidden_states(n, d, 11, prec);
    ASSERT_EQ(x.size(), static_cast<size_t>(n * d));
    EXPECT_EQ(x, normed_hidden_states(n, d, 11, prec));  // the seed decides
    double sum = 0, squares = 0;
    int64_t not_bf16 = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < d; ++j) {
        const float v = x[static_cast<size_t>(t * d + j)];
        if (j == kBiasFeature) {
          EXPECT_EQ(v, 1.0f);
          continue;
        }
        sum += v;
        squares += static_cast<double>(v) * v;
        not_bf16 += round_bf16(v) != v;
      }
    const double count = static_cast<double>(n * (d - 1));
    EXPECT_NEAR(sum / count, 0.0, 0.05);
    EXPECT_NEAR(squares / count, 1.0, 0.08);
    // A bf16 forward's norm output is bf16 values; an f32 one's almost never is.
    if (prec.bf16()) EXPECT_EQ(not_bf16, 0);
    else EXPECT_GT(not_bf16, count * 0.9);
  }
}

TEST(ZcBias, LayerShareOnRandomHiddenStates) {
  std::unique_ptr<Model> m = tiny_moepp(1);
  const int64_t d = m->config().d_model, n = 2048;
  const std::vector<float> x = normed_hidden_states(n, d, 5, Precision{});
  ThreadPool pool(1);
  MoeLayerWeights& w = m->mutable_weights().layers[0].moe;
  const MoeLayerSpec& spec = m->config().layers[0];
  for (double share : {0.05, 0.25, 0.5, 0.9}) {
    auto cal = calibrate_layer_bias(pool, spec, &w, x.data(), n, d, share);
    ASSERT_TRUE(cal.ok()) << cal.status().message();
    EXPECT_NEAR(cal->share, share, 0.01) << share;
    // Fresh hidden states from the same distribution route about the same share.
    const std::vector<float> y = normed_hidden_states(n, d, 100 + static_cast<uint64_t>(share * 100), Precision{});
    std::vector<float> logits(static_cast<size_t>(n * spec.n_experts()));
    RoutingPlan plan;
    route(pool, spec, w.router, y.data(), n, nullptr, logits.data(), &plan, Precision{});
    int64_t zc = 0;
    for (int32_t e : plan.experts) zc += spec.kinds[e] != ExpertKind::kFfn;
    EXPECT_NEAR(static_cast<double>(zc) / plan.experts.size(), share, 0.03) << share;
  }
}

TEST(ZcBias, WholeModelShare) {
  std::unique_ptr<Model> m = tiny_moepp(3);
  ThreadPool pool(1);
  std::mt19937 rng(9);
  std::vector<int32_t> tokens(128);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 512);
  for (double share : {0.1, 0.5}) {
    auto cal = calibrate_model_bias(pool, m.get(), share, tokens);
    ASSERT_TRUE(cal.ok()) << cal.status().message();
    EXPECT_NEAR(cal->share, share, 0.03) << share;
    EXPECT_EQ(cal->bias.size(), 3u);
    // The biased model still computes finite logits.
    KvCache cache = m->make_cache();
    const int32_t seq = cache.add_sequence();
    Batch b;
    for (size_t i = 0; i < 16; ++i) b.add(tokens[i], static_cast<int32_t>(i), seq, true);
    std::vector<float> logits;
    ASSERT_TRUE(m->forward(pool, b, cache, &logits).ok());
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(ZcBias, RejectsVanillaAndBadShares) {
  auto c = shape_config("moe-1b", 1);
  ASSERT_TRUE(c.ok());
  c->vocab_size = 64;
  c->d_model = 64;
  c->n_heads = c->n_kv_heads = 2;
  c->head_dim = 32;
  for (MoeLayerSpec& s : c->layers) s.ffn_width.assign(s.ffn_width.size(), 32);
  auto m = Model::random(*c, 1, LoadOptions{});
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  EXPECT_FALSE(calibrate_model_bias(pool, m.value().get(), 0.2, tokens).ok());
  std::unique_ptr<Model> pp = tiny_moepp(1);
  EXPECT_FALSE(calibrate_model_bias(pool, pp.get(), 1.5, tokens).ok());
}

}  // namespace
}  // namespace moepp
