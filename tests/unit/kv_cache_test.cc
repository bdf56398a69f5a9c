// The KV cache's storage: bf16 rows for a bf16 forward take half the memory and give the logits
// of an f32 cache bit for bit (the values are bf16 values either way); an f32 forward refuses a
// bf16 cache, which would round its keys and values. q8 rows (chosen) hold each value within half
// a quantisation step, survive growth, and give logits close to the f32 cache's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "layers/batch.h"
#include "layers/attention.h"
#include "layers/kv_cache.h"
#include "ops/kv_quant.h"
#include "platform/thread_pool.h"
#include "tiny_model.h"

namespace moepp {
namespace {

TEST(KvCache, Bf16RowsTakeHalfTheBytesAndSurviveGrowth) {
  const int64_t layers = 3, heads = 2, head_dim = 8;
  KvCache f32(layers, heads, head_dim), bf16(layers, heads, head_dim, KvStorage::kBF16);
  EXPECT_FALSE(f32.bf16());
  EXPECT_TRUE(bf16.bf16());
  const int32_t a = f32.add_sequence(), b = bf16.add_sequence();
  f32.reserve(a, 5);
  bf16.reserve(b, 5);
  EXPECT_EQ(f32.bytes(), 2 * bf16.bytes());
  auto value = [](int64_t layer, int64_t head, int64_t pos, int64_t i, bool key) {
    return f32_to_bf16(static_cast<float>(layer * 1000 + head * 100 + pos * 10 + i) * (key ? 0.5f : -0.25f));
  };
  auto each = [&](int64_t positions, auto fn) {
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t p = 0; p < positions; ++p)
          for (int64_t i = 0; i < head_dim; ++i) fn(l, h, p, i);
  };
  each(5, [&](int64_t l, int64_t h, int64_t p, int64_t i) {
    bf16.k_bf16(l, b, h, p)[i] = value(l, h, p, i, true);
    bf16.v_bf16(l, b, h, p)[i] = value(l, h, p, i, false);
  });
  // A head's positions are head_dim apart: position 1 follows position 0.
  EXPECT_EQ(bf16.k_bf16(1, b, 1, 0) + head_dim, bf16.k_bf16(1, b, 1, 1));
  bf16.reserve(b, 100);  // grows past its first capacity: every head keeps its positions
  EXPECT_EQ(bf16.length(b), 100);
  each(5, [&](int64_t l, int64_t h, int64_t p, int64_t i) {
    ASSERT_EQ(bf16.k_bf16(l, b, h, p)[i], value(l, h, p, i, true)) << "layer " << l << " head " << h << " pos " << p;
    ASSERT_EQ(bf16.v_bf16(l, b, h, p)[i], value(l, h, p, i, false)) << "layer " << l << " head " << h << " pos " << p;
  });
  EXPECT_EQ(bf16.k_bf16(0, b, 1, 99)[0], 0);  // new positions start at zero
  EXPECT_EQ(bf16.v_bf16(2, b, 1, 5)[head_dim - 1], 0);
}

TEST(KvCache, Q8RowsHoldTheirValuesWithinHalfAStepAndSurviveGrowth) {
  const int64_t layers = 2, heads = 3, head_dim = 80;  // a short last group of 16
  const int64_t groups = kv_scale_groups(head_dim);
  ASSERT_EQ(groups, 3);
  KvCache q8(layers, heads, head_dim, KvStorage::kQ8), bf16(layers, heads, head_dim, KvStorage::kBF16);
  EXPECT_TRUE(q8.q8());
  EXPECT_FALSE(q8.bf16());
  const int32_t s = q8.add_sequence(), t = bf16.add_sequence();
  q8.reserve(s, 7);
  bf16.reserve(t, 7);
  EXPECT_LT(q8.bytes(), bf16.bytes() * 6 / 10);  // 80 values + 12 bytes of scales against 160 bytes
  EXPECT_DOUBLE_EQ(q8.row_bytes(), 80 + 12);
  auto value = [](int64_t layer, int64_t head, int64_t pos, int64_t i, bool key) {
    return std::sin(static_cast<float>(layer * 131 + head * 17 + pos * 7 + i) * (key ? 0.37f : 0.91f)) * (1 + pos);
  };
  std::vector<float> row(static_cast<size_t>(head_dim));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t p = 0; p < 7; ++p)
        for (bool key : {true, false}) {
          for (int64_t i = 0; i < head_dim; ++i) row[i] = value(l, h, p, i, key);
          quantize_kv_row(row.data(), head_dim, key ? q8.k_q8(l, s, h, p) : q8.v_q8(l, s, h, p),
                          key ? q8.k_scales(l, s, h, p) : q8.v_scales(l, s, h, p));
        }
  EXPECT_EQ(q8.k_q8(1, s, 2, 0) + head_dim, q8.k_q8(1, s, 2, 1));
  EXPECT_EQ(q8.v_scales(1, s, 2, 0) + groups, q8.v_scales(1, s, 2, 1));
  q8.reserve(s, 100);  // grows past its first capacity: every head keeps its values and scales
  std::vector<float> got(static_cast<size_t>(head_dim));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t p = 0; p < 7; ++p)
        for (bool key : {true, false}) {
          const float* scales = key ? q8.k_scales(l, s, h, p) : q8.v_scales(l, s, h, p);
          dequantize_kv_rows(key ? q8.k_q8(l, s, h, p) : q8.v_q8(l, s, h, p), scales, 1, head_dim, got.data());
          for (int64_t i = 0; i < head_dim; ++i) {
            const float want = value(l, h, p, i, key), step = scales[i / 32];
            ASSERT_GT(step, 0.0f);
            ASSERT_LE(std::fabs(got[i] - want), 0.5f * step * 1.0001f)
                << "layer " << l << " head " << h << " pos " << p << " dim " << i << (key ? " key" : " value");
          }
        }
  EXPECT_EQ(q8.k_q8(0, s, 1, 99)[0], 0);  // new positions start at zero
  EXPECT_EQ(q8.v_scales(1, s, 2, 50)[groups - 1], 0.0f);
}

TEST(KvCache, Q8RowQuantisationEdgeCases) {
  std::vector<float> x(40, 0.0f);  // group 0 all zero; group 1 (8 values) with the extremes and a NaN
  x[32] = 2.54f;
  x[33] = -2.54f;
  x[34] = 0.01f;   // rounds to 0.5 of a step (0.02): half to even gives 0
  x[35] = 0.03f;   // 1.5 steps: 2
  x[36] = std::nanf("");
  std::vector<int8_t> q(40, 99);
  float scales[2] = {-1, -1};
  quantize_kv_row(x.data(), 40, q.data(), scales);
  EXPECT_EQ(scales[0], 0.0f);
  for (int i = 0; i < 32; ++i) ASSERT_EQ(q[i], 0) << i;
  EXPECT_FLOAT_EQ(scales[1], 2.54f / 127.0f);
  EXPECT_EQ(q[32], 127);
  EXPECT_EQ(q[33], -127);
  EXPECT_EQ(q[36], 0);  // NaN stores 0, not undefined behaviour
  std::vector<float> back(40);
  dequantize_kv_rows(q.data(), scales, 1, 40, back.data());
  EXPECT_EQ(back[0], 0.0f);
  EXPECT_FLOAT_EQ(back[32], 2.54f);
  EXPECT_EQ(back[33], -back[32]);
}

// Logits of a prompt, then of `steps` greedy tokens one at a time, on the given cache.
std::vector<float> run(const Model& m, ThreadPool& pool, KvCache& cache, const std::vector<int32_t>& prompt, int steps) {
  const int32_t seq = cache.add_sequence();
  std::vector<float> all, logits;
  Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), seq, true);
  const Status prefill = m.forward(pool, batch, cache, &logits);
  EXPECT_TRUE(prefill.ok()) << prefill.message();
  all = logits;
  for (int s = 0; s < steps; ++s) {
    const int64_t vocab = m.config().vocab_size;
    const float* last = logits.data() + logits.size() - vocab;
    const int32_t next = static_cast<int32_t>(std::max_element(last, last + vocab) - last);
    const int32_t pos = static_cast<int32_t>(cache.length(seq));
    Batch one;
    one.add(next, pos, seq, true);
    const Status step = m.forward(pool, one, cache, &logits);
    EXPECT_TRUE(step.ok()) << step.message();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

// The prompt's logits at every position equal those of decoding the same tokens one at a time,
// each on a cache of the model's own make_cache().
void expect_decode_steps_equal_the_prompt(const Model& m, ThreadPool& pool, const std::vector<int32_t>& tokens,
                                          const std::string& label) {
  const int64_t vocab = m.config().vocab_size;
  KvCache whole = m.make_cache(), steps = m.make_cache();
  const int32_t a = whole.add_sequence(), b = steps.add_sequence();
  Batch prompt;
  for (size_t i = 0; i < tokens.size(); ++i) prompt.add(tokens[i], static_cast<int32_t>(i), a, true);
  std::vector<float> want, got;
  ASSERT_TRUE(m.forward(pool, prompt, whole, &want).ok());
  for (size_t i = 0; i < tokens.size(); ++i) {
    Batch one;
    one.add(tokens[i], static_cast<int32_t>(i), b, true);
    ASSERT_TRUE(m.forward(pool, one, steps, &got).ok());
    EXPECT_EQ(std::memcmp(got.data(), want.data() + i * vocab, vocab * sizeof(float)), 0) << label << ", position " << i;
  }
}

TEST(KvCache, Bf16CacheGivesTheLogitsOfAnF32CacheInABf16Forward) {
  for (const char* shape : {"moepp-0.6b", "mixtral-1.8b"}) {
    testing::TinyShape t;
    t.shape = shape;
    t.load.dtype = ComputeDType::kBF16;
    auto m = testing::tiny_model(t);
    ASSERT_NE(m, nullptr);
    ThreadPool pool(2);
    KvCache bf16 = m->make_cache();
    ASSERT_TRUE(bf16.bf16()) << shape;
    KvCache f32(m->config().n_layers, m->config().n_kv_heads, m->config().head_dim);
    const std::vector<int32_t> prompt = {5, 17, 3, 250, 99, 42, 7, 7, 120};  // 9: query blocks of 4 and a tail
    const std::vector<float> want = run(*m, pool, f32, prompt, 6);
    const std::vector<float> got = run(*m, pool, bf16, prompt, 6);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << shape;
  }
}

// Decode attends each kv head's group of query heads as one block of queries; a prompt attends
// head by head over blocks of tokens. Both give each query the bits it gets alone, so a prompt's
// logits at every position equal those of decoding the same tokens one at a time, with grouped
// query heads (4 heads on 2 and on 1 kv head) and either cache.
TEST(KvCache, DecodeStepsGiveThePromptsLogitsWithGroupedQueryHeads) {
  for (int64_t kv_heads : {2, 1}) {
    for (ComputeDType dtype : {ComputeDType::kF32, ComputeDType::kBF16}) {
      testing::TinyShape t;
      t.shape = "mixtral-1.8b";
      t.kv_heads = kv_heads;
      t.load.dtype = dtype;
      auto m = testing::tiny_model(t);
      ASSERT_NE(m, nullptr);
      ThreadPool pool(2);
      expect_decode_steps_equal_the_prompt(*m, pool, {5, 17, 3, 250, 99, 42, 7, 7, 120, 64, 1},
                                           "kv heads " + std::to_string(kv_heads));
    }
  }
}

TEST(KvCache, F32ForwardRefusesABf16Cache) {
  testing::TinyShape t;
  auto m = testing::tiny_model(t);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->make_cache().bf16());
  KvCache bf16(m->config().n_layers, m->config().n_kv_heads, m->config().head_dim, KvStorage::kBF16);
  const int32_t seq = bf16.add_sequence();
  Batch batch;
  batch.add(1, 0, seq, true);
  ThreadPool pool(1);
  std::vector<float> logits;
  const Status s = m->forward(pool, batch, bf16, &logits);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("KV cache"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace moepp

namespace moepp {
namespace {

// A q8 cache is an approximation: the logits stay close to the f32 cache's, prompt and decode
// steps agree bit for bit (both attend the same stored rows through the same kernels), and the
// model's own make_cache() gives it when the load options ask.
TEST(KvCache, Q8CacheLogitsStayCloseAndDecodeStepsEqualThePrompt) {
  for (const char* shape : {"moepp-0.6b", "mixtral-1.8b"}) {
    for (ComputeDType dtype : {ComputeDType::kF32, ComputeDType::kBF16}) {
      testing::TinyShape t;
      t.shape = shape;
      t.load.dtype = dtype;
      t.load.kv_cache = KvStorage::kQ8;
      auto m = testing::tiny_model(t);
      ASSERT_NE(m, nullptr);
      ASSERT_EQ(m->kv_storage(), KvStorage::kQ8);
      ThreadPool pool(2);
      KvCache q8 = m->make_cache();
      ASSERT_TRUE(q8.q8());
      KvCache f32(m->config().n_layers, m->config().n_kv_heads, m->config().head_dim);
      const std::vector<int32_t> prompt = {5, 17, 3, 250, 99, 42, 7, 7, 120};
      const std::vector<float> want = run(*m, pool, f32, prompt, 4);
      const std::vector<float> got = run(*m, pool, q8, prompt, 4);
      ASSERT_EQ(got.size(), want.size());
      double err = 0, norm = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        err += (got[i] - want[i]) * static_cast<double>(got[i] - want[i]);
        norm += want[i] * static_cast<double>(want[i]);
      }
      EXPECT_LT(std::sqrt(err / norm), 0.05) << shape;  // relative RMS error of the logits
      EXPECT_GT(std::sqrt(err / norm), 0.0) << shape << ": a q8 cache that changes nothing is not quantising";

      // The prompt's logits at each position equal decoding the same tokens one at a time.
      expect_decode_steps_equal_the_prompt(*m, pool, prompt, shape);
    }
  }
}

// Attention over q8 rows widens them in chunks and runs the f32 kernels: its outputs must be
// those of the f32 rows the q8 rows stand for, bit for bit, across chunk boundaries (64 rows of 64
// dims), with grouped queries and short last groups (the active kernel set; MOEPP_KERNELS picks another).
TEST(KvCache, AttentionOnQ8RowsEqualsAttentionOnTheirF32Values) {
  std::vector<float> scratch;
  for (int64_t hd : {16, 64, 80, 128}) {
    const int64_t groups = kv_scale_groups(hd);
    for (int64_t count : {1, 63, 64, 65, 257, 600}) {
      std::vector<float> raw(static_cast<size_t>(2 * count * hd)), deq(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) raw[i] = std::sin(0.7f * static_cast<float>(i)) * (1 + static_cast<float>(i % 13));
      std::vector<int8_t> q8(raw.size());
      std::vector<float> scales(static_cast<size_t>(2 * count * groups));
      for (int64_t r = 0; r < 2 * count; ++r) quantize_kv_row(&raw[r * hd], hd, &q8[r * hd], &scales[r * groups]);
      dequantize_kv_rows(q8.data(), scales.data(), 2 * count, hd, deq.data());
      CacheSlice keys_q8, values_q8, keys_f32, values_f32;
      keys_q8.stride = values_q8.stride = keys_f32.stride = values_f32.stride = hd;
      keys_q8.q8 = q8.data();
      keys_q8.scales = scales.data();
      values_q8.q8 = q8.data() + count * hd;
      values_q8.scales = scales.data() + count * groups;
      keys_f32.f32 = deq.data();
      values_f32.f32 = deq.data() + count * hd;
      for (int64_t A : {1, 3, 4}) {
        std::vector<float> q(static_cast<size_t>(A * hd));
        for (size_t i = 0; i < q.size(); ++i) q[i] = round_bf16(std::cos(0.3f * static_cast<float>(i)));
        for (ComputeDType dtype : {ComputeDType::kF32, ComputeDType::kBF16}) {
          Precision p;
          p.dtype = dtype;
          std::vector<float> want(q.size()), got(q.size());
          attend_kv_head(keys_f32, values_f32, q.data(), A, hd, hd, count, want.data(), hd, p);
          attend_kv_head(keys_q8, values_q8, q.data(), A, hd, hd, count, got.data(), hd, p);
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << "head_dim " << hd << " count " << count << " queries " << A;
          // Later rows count: a slice from row 5 is the rows from 5 on.
          if (count > 5) {
            attend_kv_head(keys_f32.from(5), values_f32.from(5), q.data(), A, hd, hd, count - 5, want.data(), hd, p);
            attend_kv_head(keys_q8.from(5), values_q8.from(5), q.data(), A, hd, hd, count - 5, got.data(), hd, p);
            ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "from row 5, head_dim " << hd;
          }
        }
      }
    }
  }
}

TEST(KvCache, Bf16CacheUnderAnF32ForwardIsRefusedAtLoad) {
  const ModelConfig c = testing::tiny_config(testing::TinyShape{});
  LoadOptions load;
  load.kv_cache = KvStorage::kBF16;
  auto m = Model::random(c, 1, load);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("--kv-cache bf16"), std::string::npos) << m.status().message();
  load.dtype = ComputeDType::kBF16;  // a bf16 forward's keys and values are bf16 values
  load.kv_cache = KvStorage::kF32;   // and an f32 cache holds anything
  EXPECT_TRUE(Model::random(c, 1, load).ok());
}

}  // namespace
}  // namespace moepp
