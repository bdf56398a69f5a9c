// Causal self-attention (RoPE, GQA, optional sliding window) for training: a forward that keeps
// what the backward needs, and the backward. The batch is n_seqs sequences of seq_len tokens,
// flattened to [n_tokens = n_seqs * seq_len, ...]; token s*seq_len + i sits at position i.
#pragma once

#include <cstdint>
#include <vector>

#include "platform/thread_pool.h"

namespace moepp {

struct AttentionDims {
  int64_t d_model, n_heads, n_kv_heads, head_dim;
  int64_t sliding_window = 0;  // 0: none; else a query sees itself and the previous W-1 keys
  int64_t n_seqs, seq_len;
  int64_t n_tokens() const { return n_seqs * seq_len; }
};

struct AttentionWeightsF32 {
  const float *q, *k, *v, *o;  // [n_heads*hd, d], [n_kv*hd, d], [n_kv*hd, d], [d, n_heads*hd]
};

struct AttentionGrads {
  float *q, *k, *v, *o;  // same shapes, accumulated into
};

struct AttentionActivations {
  std::vector<float> q;      // [n_tokens, n_heads*hd] after RoPE
  std::vector<float> k;      // [n_tokens, n_kv*hd] after RoPE
  std::vector<float> v;      // [n_tokens, n_kv*hd]
  std::vector<float> probs;  // [n_seqs, n_heads, seq_len, seq_len], 0 where masked
  std::vector<float> mixed;  // [n_tokens, n_heads*hd] probs * V, the o_proj input
};

// y (out): [n_tokens, d_model].
void attention_train_forward(ThreadPool& pool, const AttentionDims& dims, const AttentionWeightsF32& w,
                             const float* inv_freq /*[hd/2]*/, const float* x /*[n_tokens, d_model]*/,
                             float* y, AttentionActivations* act);

// dx (accumulated): [n_tokens, d_model]; weight gradients accumulated into g.
void attention_train_backward(ThreadPool& pool, const AttentionDims& dims, const AttentionWeightsF32& w,
                              const float* inv_freq, const float* x, const AttentionActivations& act,
                              const float* dy /*[n_tokens, d_model]*/, float* dx, AttentionGrads g);

}  // namespace moepp
