// Eager attention as in the HF reference: scores = q.k, then / sqrt(head_dim), causal mask,
// softmax in f32, probabilities rounded to the activation dtype, times V.
#include "layers/attention.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "ops/elementwise.h"
#include "ops/kv_quant.h"
#include "ops/matmul.h"

namespace moepp {
namespace {

// q8 rows go to the set's q8 kernels where it has them for this width (they widen in registers);
// otherwise they are widened to f32 a chunk at a time into a buffer that stays in L1 (16 KiB) and
// the f32 kernels run on it: each score is its own dot, and the values' axpy adds rows in order
// whether in one call or in chunks, so either way the results are the f32 kernels' on the rows'
// values.
constexpr int64_t kQ8ChunkFloats = 4096;

template <class Fn>
void for_q8_chunks(const CacheSlice& rows, int64_t count, int64_t n, Fn fn /*(j0, rows as f32, chunk rows)*/) {
  thread_local std::vector<float> chunk;
  const int64_t per_chunk = std::max<int64_t>(1, kQ8ChunkFloats / n);
  chunk.resize(static_cast<size_t>(std::min(count, per_chunk) * n));
  const int64_t groups = kv_scale_groups(n);
  for (int64_t j0 = 0; j0 < count; j0 += per_chunk) {
    const int64_t m = std::min(per_chunk, count - j0);
    dequantize_kv_rows(rows.q8 + j0 * n, rows.scales + j0 * groups, m, n, chunk.data());
    fn(j0, chunk.data(), m);
  }
}

// The kernel set's block kernels (ops/dot_kernels.h) on any storage: the bits of the f32 kernels on
// the values stored.
void dot_block(const kernels::KernelSet& kern, const float* q, int64_t A, int64_t ldq, const CacheSlice& keys,
               int64_t count, int64_t n, float* y, int64_t ldy) {
  if (keys.bf16) return kern.dot_rows_block_bf16(q, A, ldq, keys.bf16, keys.stride, count, n, y, ldy);
  if (!keys.q8) return kern.dot_rows_block(q, A, ldq, keys.f32, keys.stride, count, n, y, ldy);
  if (kern.dot_rows_block_q8 != nullptr && kern.dot_rows_block_q8(q, A, ldq, keys.q8, keys.scales, count, n, y, ldy))
    return;
  for_q8_chunks(keys, count, n, [&](int64_t j0, const float* rows, int64_t m) {
    kern.dot_rows_block(q, A, ldq, rows, n, m, n, y + j0, ldy);
  });
}

void axpy_block(const kernels::KernelSet& kern, const float* c, int64_t A, int64_t ldc, const CacheSlice& values,
                int64_t count, float* y, int64_t ldy, int64_t n) {
  if (values.bf16) return kern.axpy_rows_block_bf16(c, A, ldc, values.bf16, values.stride, count, y, ldy, n);
  if (!values.q8) return kern.axpy_rows_block(c, A, ldc, values.f32, values.stride, count, y, ldy, n);
  if (kern.axpy_rows_block_q8 != nullptr &&
      kern.axpy_rows_block_q8(c, A, ldc, values.q8, values.scales, count, y, ldy, n))
    return;
  for_q8_chunks(values, count, n, [&](int64_t j0, const float* rows, int64_t m) {
    kern.axpy_rows_block(c + j0, A, ldc, rows, n, m, y, ldy, n);
  });
}

// A queries against one kv head's keys and values from its first visible key on: query a at
// q0 + a * ldq sees n_keys(a) keys and writes out + a * ldo. Keys and values are loaded once for
// all of them (dot_rows_block, axpy_rows_block); each query's outputs have the bits it would get
// alone. Scores as HF's eager attention: q.k, then / sqrt(head_dim), softmax in f32,
// probabilities rounded to the activation dtype, times V.
template <class KeysOf>
void attend_queries(const CacheSlice& keys, const CacheSlice& values, const float* q0, int64_t A, int64_t ldq,
                    int64_t hd, float* out, int64_t ldo, KeysOf n_keys, Precision p) {
  int64_t most = 0, fewest = INT64_MAX;  // keys seen by the queries
  for (int64_t a = 0; a < A; ++a) {
    most = std::max(most, n_keys(a));
    fewest = std::min(fewest, n_keys(a));
  }
  thread_local std::vector<float> scores;  // [A, most]; a query's scores past its own keys are unused
  scores.resize(static_cast<size_t>(A * most));
  const kernels::KernelSet& kern = kernels::active_kernels();
  dot_block(kern, q0, A, ldq, keys, most, hd, scores.data(), most);
  const float score_divisor = std::sqrt(static_cast<float>(hd));
  for (int64_t a = 0; a < A; ++a) {
    float* s = &scores[a * most];
    const int64_t count = n_keys(a);
    attention_probabilities(s, count, score_divisor, p);  // in the activation dtype
    std::fill(out + a * ldo, out + a * ldo + hd, 0.0f);
  }
  // Values 0 .. fewest - 1 for all queries at once, then each query's own remaining ones, in order.
  axpy_block(kern, scores.data(), A, most, values, fewest, out, ldo, hd);
  for (int64_t a = 0; a < A; ++a) {
    const int64_t count = n_keys(a);
    if (count > fewest)
      axpy_block(kern, &scores[a * most + fewest], 1, most, values.from(fewest), count - fewest, out + a * ldo, ldo,
                 hd);
    p.round(out + a * ldo, static_cast<size_t>(hd));
  }
}

}  // namespace

CacheSlice CacheSlice::from(int64_t row) const {
  CacheSlice s = *this;
  if (f32) s.f32 += row * stride;
  if (bf16) s.bf16 += row * stride;
  if (q8) {
    s.q8 += row * stride;
    s.scales += row * kv_scale_groups(stride);
  }
  return s;
}

void attend_kv_head(const CacheSlice& keys, const CacheSlice& values, const float* q, int64_t A, int64_t ldq,
                    int64_t head_dim, int64_t count, float* out, int64_t ldo, Precision p) {
  attend_queries(keys, values, q, A, ldq, head_dim, out, ldo, [count](int64_t) { return count; }, p);
}

void attention_forward(ThreadPool& pool, const AttentionShape& shape, const AttentionWeights& w,
                       const std::vector<float>& inv_freq, const Batch& batch, int64_t layer,
                       KvCache& cache, const float* x, float* y, Precision p) {
  const int64_t n = batch.size();
  const int64_t hd = shape.head_dim;
  const int64_t q_width = shape.n_heads * hd;
  const int64_t kv_width = shape.n_kv_heads * hd;
  // Not zero-filled: the matmuls and the attention tasks write every element.
  const auto q = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n * q_width));   // [n, n_heads*hd]
  const auto k = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n * kv_width));  // [n, n_kv*hd]
  const auto v = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n * kv_width));  // [n, n_kv*hd]
  matmul_many(pool, x, n, {{&w.q, q.get()}, {&w.k, k.get()}, {&w.v, v.get()}}, p);
  // RoPE and the cache rows, token by token (tokens are independent: the same bits however split).
  pool.parallel_for(n, [&](int64_t t) {
    thread_local std::vector<float> cos_sin;  // [hd]: this token's RoPE table, for every head
    cos_sin.resize(static_cast<size_t>(hd));
    const int64_t pos = batch.positions[t];
    rope_cos_sin(pos, inv_freq.data(), hd, cos_sin.data(), p);
    for (int64_t h = 0; h < shape.n_heads; ++h) rope_inplace(&q[t * q_width + h * hd], hd, cos_sin.data(), p);
    for (int64_t h = 0; h < shape.n_kv_heads; ++h) rope_inplace(&k[t * kv_width + h * hd], hd, cos_sin.data(), p);
    // The caller reserved the cache for every position in the batch. A bf16 cache gets bf16
    // values (Model::make_cache), which f32_to_bf16 keeps exactly.
    const int32_t seq = batch.seq_ids[t];
    for (int64_t h = 0; h < shape.n_kv_heads; ++h) {
      const float* kh = &k[t * kv_width + h * hd];
      const float* vh = &v[t * kv_width + h * hd];
      if (cache.bf16()) {
        std::transform(kh, kh + hd, cache.k_bf16(layer, seq, h, pos), f32_to_bf16);
        std::transform(vh, vh + hd, cache.v_bf16(layer, seq, h, pos), f32_to_bf16);
      } else if (cache.q8()) {
        quantize_kv_row(kh, hd, cache.k_q8(layer, seq, h, pos), cache.k_scales(layer, seq, h, pos));
        quantize_kv_row(vh, hd, cache.v_q8(layer, seq, h, pos), cache.v_scales(layer, seq, h, pos));
      } else {
        std::copy(kh, kh + hd, cache.k(layer, seq, h, pos));
        std::copy(vh, vh + hd, cache.v(layer, seq, h, pos));
      }
    }
  });

  const auto attn = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(n * q_width));  // [n, n_heads*hd]
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  auto first_key = [&](int64_t t) {
    const int64_t pos = batch.positions[t];
    return shape.sliding_window > 0 ? std::max<int64_t>(0, pos - shape.sliding_window + 1) : 0;
  };
  // Kv head kvh's keys and values of a sequence from position `first` on: hd values a position.
  auto cached = [&](int64_t kvh, int32_t seq, int64_t first) {
    std::pair<CacheSlice, CacheSlice> kv;
    kv.first.stride = kv.second.stride = hd;
    if (cache.bf16()) {
      kv.first.bf16 = cache.k_bf16(layer, seq, kvh, first);
      kv.second.bf16 = cache.v_bf16(layer, seq, kvh, first);
    } else if (cache.q8()) {
      kv.first.q8 = cache.k_q8(layer, seq, kvh, first);
      kv.first.scales = cache.k_scales(layer, seq, kvh, first);
      kv.second.q8 = cache.v_q8(layer, seq, kvh, first);
      kv.second.scales = cache.v_scales(layer, seq, kvh, first);
    } else {
      kv.first.f32 = cache.k(layer, seq, kvh, first);
      kv.second.f32 = cache.v(layer, seq, kvh, first);
    }
    return kv;
  };
  // Queries t0 .. t1 - 1 of head h, of one sequence and with the same first key.
  auto attend_tokens = [&](int64_t h, int64_t t0, int64_t t1) {
    const int64_t first = first_key(t0);
    const auto [keys, values] = cached(h / group, batch.seq_ids[t0], first);
    attend_queries(keys, values, &q[t0 * q_width + h * hd], t1 - t0, q_width, hd, &attn[t0 * q_width + h * hd],
                   q_width, [&](int64_t a) { return batch.positions[t0 + a] + 1 - first; }, p);
  };
  // Token t's query heads that share kv head kvh (HF repeat_kv: consecutive query heads), as one
  // block: the kv head's keys are loaded and widened once for the group, not once per head.
  auto attend_group = [&](int64_t kvh, int64_t t) {
    const int64_t first = first_key(t);
    const auto [keys, values] = cached(kvh, batch.seq_ids[t], first);
    const int64_t offset = t * q_width + kvh * group * hd;
    attend_kv_head(keys, values, &q[offset], group, hd, hd, batch.positions[t] + 1 - first, &attn[offset], hd, p);
  };
  // One token per sequence (decode, alone or batched): tasks of one kv head's group of query heads
  // for one token. Otherwise head-major tasks of up to kQueryBlock tokens: consecutive tasks are
  // consecutive tokens of one head, which read the same keys and values while they are in cache.
  // Token-major, every token swept all heads' keys and values, the whole layer's cache, through L2
  // again.
  bool one_token_per_sequence = true;
  for (int64_t t = 0; t < n && one_token_per_sequence; ++t)
    for (int64_t u = 0; u < t && one_token_per_sequence; ++u) one_token_per_sequence = batch.seq_ids[u] != batch.seq_ids[t];
  if (one_token_per_sequence) {
    pool.parallel_for(shape.n_kv_heads * n, [&](int64_t task) { attend_group(task / n, task % n); });
  } else {
    constexpr int64_t kQueryBlock = 4;
    const int64_t n_blocks = (n + kQueryBlock - 1) / kQueryBlock;
    pool.parallel_for(shape.n_heads * n_blocks, [&](int64_t task) {
      const int64_t h = task / n_blocks;
      const int64_t end = std::min(n, (task % n_blocks + 1) * kQueryBlock);
      for (int64_t t0 = (task % n_blocks) * kQueryBlock; t0 < end;) {
        int64_t t1 = t0 + 1;  // a run of one sequence's queries with the same first key
        while (t1 < end && batch.seq_ids[t1] == batch.seq_ids[t0] && first_key(t1) == first_key(t0)) ++t1;
        attend_tokens(h, t0, t1);
        t0 = t1;
      }
    });
  }
  matmul(pool, attn.get(), n, w.o, y, p);
}

}  // namespace moepp
