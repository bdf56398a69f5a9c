// The KV cache's storage: bf16 rows for a bf16 forward take half the memory and give the logits
// of an f32 cache bit for bit (the values are bf16 values either way); an f32 forward refuses a
// bf16 cache, which would round its keys and values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "layers/batch.h"
#include "layers/kv_cache.h"
#include "platform/thread_pool.h"
#include "tiny_model.h"

namespace moepp {
namespace {

TEST(KvCache, Bf16RowsTakeHalfTheBytesAndSurviveGrowth) {
  const int64_t layers = 3, heads = 2, head_dim = 8;
  KvCache f32(layers, heads, head_dim), bf16(layers, heads, head_dim, true);
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
      const std::vector<int32_t> tokens = {5, 17, 3, 250, 99, 42, 7, 7, 120, 64, 1};
      const int64_t vocab = m->config().vocab_size;
      KvCache whole = m->make_cache(), steps = m->make_cache();
      const int32_t a = whole.add_sequence(), b = steps.add_sequence();
      Batch prompt;
      for (size_t i = 0; i < tokens.size(); ++i) prompt.add(tokens[i], static_cast<int32_t>(i), a, true);
      std::vector<float> want, got;
      ASSERT_TRUE(m->forward(pool, prompt, whole, &want).ok());
      for (size_t i = 0; i < tokens.size(); ++i) {
        Batch one;
        one.add(tokens[i], static_cast<int32_t>(i), b, true);
        ASSERT_TRUE(m->forward(pool, one, steps, &got).ok());
        EXPECT_EQ(std::memcmp(got.data(), want.data() + i * vocab, vocab * sizeof(float)), 0)
            << "kv heads " << kv_heads << ", position " << i;
      }
    }
  }
}

TEST(KvCache, F32ForwardRefusesABf16Cache) {
  testing::TinyShape t;
  auto m = testing::tiny_model(t);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->make_cache().bf16());
  KvCache bf16(m->config().n_layers, m->config().n_kv_heads, m->config().head_dim, true);
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
