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

// x: [n_tokens, d_model] normed input; y (out): [n_tokens, d_model].
void attention_forward(ThreadPool& pool, const AttentionShape& shape, const AttentionWeights& w,
                       const std::vector<float>& inv_freq /*[head_dim/2]*/, const Batch& batch,
                       int64_t layer, KvCache& cache, const float* x, float* y, Precision p);

}  // namespace moepp
