// Causal self-attention with RoPE, GQA and an optional sliding window, over a batch of
// tokens from several sequences, reading and writing the KV cache.
#pragma once

#include <cstdint>
#include <vector>

#include "layers/batch.h"
#include "layers/kv_cache.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

struct AttentionShape {
  int64_t d_model, n_heads, n_kv_heads, head_dim;
  int64_t sliding_window = 0;  // 0: none; else a query sees itself and the previous W-1 keys
};

struct AttentionWeights {
  Weight q, k, v, o;  // [n_heads*head_dim, d_model], [n_kv*hd, d], [n_kv*hd, d], [d, n_heads*hd]
};

// A kv head's keys or values in the cache from some position on: head_dim-wide rows `stride`
// elements apart, stored as f32, bf16 or q8 (layers/kv_cache.h); exactly one of f32, bf16 and
// q8 is set, and q8 rows have their kv_scale_groups(stride) scales each in `scales`.
struct CacheSlice {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  const int8_t* q8 = nullptr;
  const float* scales = nullptr;
  int64_t stride = 0;

  CacheSlice from(int64_t row) const;
};

// One decode step of one kv head: A query heads (query a at q + a * ldq, head_dim wide) against
// the same `count` keys and values; out + a * ldo gets query a's attention output. The keys
// and values are read once for all A queries (grouped query heads). The engine's own step, so
// `moepp bench --attention` times what a forward runs.
void attend_kv_head(const CacheSlice& keys, const CacheSlice& values, const float* q, int64_t A, int64_t ldq,
                    int64_t head_dim, int64_t count, float* out, int64_t ldo, Precision p);

// x: [n_tokens, d_model] normed input; y (out): [n_tokens, d_model].
void attention_forward(ThreadPool& pool, const AttentionShape& shape, const AttentionWeights& w,
                       const std::vector<float>& inv_freq /*[head_dim/2]*/, const Batch& batch,
                       int64_t layer, KvCache& cache, const float* x, float* y, Precision p);

}  // namespace moepp
