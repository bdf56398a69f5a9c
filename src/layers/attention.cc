// Eager attention as in the HF reference: scores = q.k, then / sqrt(head_dim), causal mask,
// softmax in f32, probabilities rounded to the activation dtype, times V.
#include "layers/attention.h"

#include <cmath>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {

void attention_forward(ThreadPool& pool, const AttentionShape& shape, const AttentionWeights& w,
                       const std::vector<float>& inv_freq, const Batch& batch, int64_t layer,
                       KvCache& cache, const float* x, float* y, Precision p) {
  const int64_t n = batch.size();
  const int64_t hd = shape.head_dim;
  const int64_t q_width = shape.n_heads * hd;
  const int64_t kv_width = shape.n_kv_heads * hd;
  std::vector<float> q(static_cast<size_t>(n * q_width));   // [n, n_heads*hd]
  std::vector<float> k(static_cast<size_t>(n * kv_width));  // [n, n_kv*hd]
  std::vector<float> v(static_cast<size_t>(n * kv_width));  // [n, n_kv*hd]
  matmul(pool, x, n, w.q, q.data(), p);
  matmul(pool, x, n, w.k, k.data(), p);
  matmul(pool, x, n, w.v, v.data(), p);
  // RoPE and the cache rows, token by token (tokens are independent: the same bits however split).
  pool.parallel_for(n, [&](int64_t t) {
    thread_local std::vector<float> cos_sin;  // [hd]: this token's RoPE table, for every head
    cos_sin.resize(static_cast<size_t>(hd));
    const int64_t pos = batch.positions[t];
    rope_cos_sin(pos, inv_freq.data(), hd, cos_sin.data(), p);
    for (int64_t h = 0; h < shape.n_heads; ++h) rope_inplace(&q[t * q_width + h * hd], hd, cos_sin.data(), p);
    for (int64_t h = 0; h < shape.n_kv_heads; ++h) rope_inplace(&k[t * kv_width + h * hd], hd, cos_sin.data(), p);
    // The caller reserved the cache for every position in the batch.
    std::copy(&k[t * kv_width], &k[(t + 1) * kv_width], cache.k(layer, batch.seq_ids[t], pos));
    std::copy(&v[t * kv_width], &v[(t + 1) * kv_width], cache.v(layer, batch.seq_ids[t], pos));
  });

  std::vector<float> attn(static_cast<size_t>(n * q_width));  // [n, n_heads*hd]
  const float inv_scale_div = std::sqrt(static_cast<float>(hd));
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  // Head-major tasks: consecutive tasks are consecutive tokens of one head, which read the same
  // keys and values (that head's slice of the cache rows) while they are in cache. Token-major,
  // every token swept all heads' slices, the whole layer's cache, through L2 again.
  pool.parallel_for(n * shape.n_heads, [&](int64_t task) {
    const int64_t h = task / n;
    const int64_t t = task % n;
    const int64_t kvh = h / group;  // HF repeat_kv: consecutive query heads share a kv head
    const int32_t seq = batch.seq_ids[t];
    const int64_t pos = batch.positions[t];
    const int64_t first = shape.sliding_window > 0 ? std::max<int64_t>(0, pos - shape.sliding_window + 1) : 0;
    const float* qh = &q[t * q_width + h * hd];
    const int64_t n_keys = pos + 1 - first;
    // The sequence's cached positions are rows of row_size floats: this head's keys and values
    // are hd-wide column slices of them.
    const int64_t stride = cache.row_size();
    thread_local std::vector<float> scores;  // [n_keys]
    scores.resize(static_cast<size_t>(n_keys));
    const kernels::KernelSet& kern = kernels::active_kernels();
    kern.dot_rows(qh, cache.k(layer, seq, first) + kvh * hd, stride, n_keys, hd, scores.data());
    for (float& s : scores) s = p.round(p.round(s) / inv_scale_div);
    softmax_inplace(scores.data(), n_keys);
    p.round(scores.data(), scores.size());  // the probabilities in the activation dtype
    float* out = &attn[t * q_width + h * hd];
    std::fill(out, out + hd, 0.0f);
    kern.axpy_rows(scores.data(), cache.v(layer, seq, first) + kvh * hd, stride, n_keys, out, hd);
    p.round(out, static_cast<size_t>(hd));
  });
  matmul(pool, attn.data(), n, w.o, y, p);
}

}  // namespace moepp
