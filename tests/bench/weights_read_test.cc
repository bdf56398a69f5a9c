// The read that bench rows divide by covers every matrix a decode step streams (attention,
// router, FFN experts) at the bytes they are stored in, and reports a rate.
#include <gtest/gtest.h>

#include "bench/weights_read.h"
#include "tiny_model.h"

namespace moepp {
namespace {

// Stored bytes per weight of a format: values plus one f32 scale per group of 32 for q8/q4.
double bytes_per_weight(ComputeDType dtype, WeightQuant q) {
  if (q == WeightQuant::kQ8) return 1.0 + 4.0 / 32;
  if (q == WeightQuant::kQ4) return 0.5 + 4.0 / 32;
  return dtype == ComputeDType::kBF16 ? 2.0 : 4.0;
}

TEST(WeightsRead, CoversAttentionRouterAndExpertMatricesAtTheirStoredSize) {
  for (WeightQuant q : {WeightQuant::kNone, WeightQuant::kQ8, WeightQuant::kQ4}) {
    testing::TinyShape t;
    t.shape = "moepp-1b";  // 16 FFN experts and zero-computation ones, which store nothing
    t.layers = 2;
    t.d_model = 64;
    t.heads = 4;
    t.kv_heads = 2;
    t.ffn = 96;
    t.load = LoadOptions{};
    t.load.dtype = ComputeDType::kBF16;
    t.load.expert_quant = t.load.rest_quant = q;
    std::unique_ptr<Model> m = testing::tiny_model(t);
    ASSERT_NE(m, nullptr);
    const ModelConfig& c = m->config();
    const double matrix = bytes_per_weight(ComputeDType::kBF16, q);
    const double router = 2.0;  // routers keep the compute precision
    double want = 0;
    const int64_t d = c.d_model, q_rows = c.n_heads * c.head_dim, kv_rows = c.n_kv_heads * c.head_dim;
    for (const MoeLayerSpec& s : c.layers) {
      want += matrix * static_cast<double>(q_rows * d + 2 * kv_rows * d + d * q_rows);
      want += router * static_cast<double>(s.n_experts() * d);
      for (int64_t w : s.ffn_width)
        if (w > 0) want += matrix * static_cast<double>(2 * w * d + d * w);
    }
    const WeightsRead read(*m);
    EXPECT_EQ(static_cast<double>(read.bytes()), want) << "quant " << static_cast<int>(q);
    EXPECT_FALSE(read.usable()) << "a tiny model fits in cache: bench rows fall back to the machine's limit";
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      EXPECT_GT(read.read_gb_s(pool), 0.0) << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace moepp
