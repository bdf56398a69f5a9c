// A small random model of a named bench shape, for tests that need a whole model but not its
// size: the shape's expert table and routers, with narrow widths.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "bench/shapes.h"
#include "models/model.h"

namespace moepp::testing {

struct TinyShape {
  const char* shape = "moepp-0.6b";
  int64_t layers = 2;
  int64_t vocab = 300;
  int64_t d_model = 64;
  int64_t heads = 4;     // head_dim = d_model / heads
  int64_t kv_heads = 0;  // 0: as many as heads
  int64_t ffn = 32;   // width of every FFN expert
  uint64_t seed = 1;
  LoadOptions load;
};

inline ModelConfig tiny_config(const TinyShape& t) {
  auto c = shape_config(t.shape, t.layers);
  EXPECT_TRUE(c.ok());
  c->vocab_size = t.vocab;
  c->d_model = t.d_model;
  c->n_heads = t.heads;
  c->n_kv_heads = t.kv_heads > 0 ? t.kv_heads : t.heads;
  c->head_dim = t.d_model / t.heads;
  for (MoeLayerSpec& s : c->layers)
    for (int64_t& w : s.ffn_width)
      if (w > 0) w = t.ffn;
  return *c;
}

inline std::unique_ptr<Model> tiny_model(const TinyShape& t) {
  auto m = Model::random(tiny_config(t), t.seed, t.load);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

}  // namespace moepp::testing
