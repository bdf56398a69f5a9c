// Attention on sgemm per (sequence, head): full T x T products with the masked entries zeroed
// (the wasted upper triangle costs less than scalar loops would). The backward runs per
// (sequence, kv head) task so GQA gradients for a kv head are summed by one thread in a fixed order: with P = softmax(S), S = q.k / sqrt(hd),
// dV_j += P_ij dO_i, dP_ij = dO_i . v_j, dS = P (dP - sum_j P dP), dq_i += dS_ij k_j / sqrt(hd),
// dk_j += dS_ij q_i / sqrt(hd); RoPE is undone on dq, dk by the inverse rotation.
#include "train/attention_grad.h"

#include <algorithm>
#include <cmath>

#include "train/linear.h"
#include "train/norm_rope.h"

namespace moepp {
namespace {

int64_t first_key(const AttentionDims& d, int64_t i) {
  return d.sliding_window > 0 ? std::max<int64_t>(0, i - d.sliding_window + 1) : 0;
}

}  // namespace

void attention_train_forward(ThreadPool& pool, const AttentionDims& d, const AttentionWeightsF32& w,
                             const float* inv_freq, const float* x, float* y, AttentionActivations* a) {
  const int64_t n = d.n_tokens(), hd = d.head_dim, T = d.seq_len;
  const int64_t qw = d.n_heads * hd, kvw = d.n_kv_heads * hd;
  a->q.resize(static_cast<size_t>(n * qw));
  a->k.resize(static_cast<size_t>(n * kvw));
  a->v.resize(static_cast<size_t>(n * kvw));
  linear_forward(pool, x, n, d.d_model, w.q, qw, a->q.data());
  linear_forward(pool, x, n, d.d_model, w.k, kvw, a->k.data());
  linear_forward(pool, x, n, d.d_model, w.v, kvw, a->v.data());
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = t % T;
    for (int64_t h = 0; h < d.n_heads; ++h) rope_rotate(&a->q[t * qw + h * hd], hd, pos, inv_freq, false);
    for (int64_t h = 0; h < d.n_kv_heads; ++h) rope_rotate(&a->k[t * kvw + h * hd], hd, pos, inv_freq, false);
  }
  a->probs.assign(static_cast<size_t>(d.n_seqs * d.n_heads * T * T), 0.0f);
  a->mixed.assign(static_cast<size_t>(n * qw), 0.0f);
  const float inv_sqrt = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t group = d.n_heads / d.n_kv_heads;
  pool.parallel_for(d.n_seqs * d.n_heads, [&](int64_t task) {
    const int64_t s = task / d.n_heads, h = task % d.n_heads, kvh = h / group;  // HF repeat_kv
    const float* q = &a->q[s * T * qw + h * hd];    // [T, hd], row stride qw
    const float* k = &a->k[s * T * kvw + kvh * hd];  // [T, hd], row stride kvw
    const float* v = &a->v[s * T * kvw + kvh * hd];  // [T, hd], row stride kvw
    float* p = &a->probs[(s * d.n_heads + h) * T * T];  // [T, T]
    // Scores for every (i, j); the masked ones are overwritten by zeros below.
    gemm_on_this_thread(false, true, T, T, hd, inv_sqrt, q, qw, k, kvw, 0.0f, p, T);
    for (int64_t i = 0; i < T; ++i) {
      float* row = p + i * T;
      const int64_t j0 = first_key(d, i);
      float mx = -INFINITY;
      for (int64_t j = j0; j <= i; ++j) mx = std::max(mx, row[j]);
      double sum = 0;
      for (int64_t j = j0; j <= i; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < j0; ++j) row[j] = 0.0f;
      for (int64_t j = j0; j <= i; ++j) row[j] *= inv;
      for (int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
    }
    // mixed[:, h] = P V  ([T, T] x [T, hd])
    gemm_on_this_thread(false, false, T, hd, T, 1.0f, p, T, v, kvw, 0.0f, &a->mixed[s * T * qw + h * hd], qw);
  });
  linear_forward(pool, a->mixed.data(), n, qw, w.o, d.d_model, y);
}

void attention_train_backward(ThreadPool& pool, const AttentionDims& d, const AttentionWeightsF32& w,
                              const float* inv_freq, const float* x, const AttentionActivations& a,
                              const float* dy, float* dx, AttentionGrads g) {
  const int64_t n = d.n_tokens(), hd = d.head_dim, T = d.seq_len;
  const int64_t qw = d.n_heads * hd, kvw = d.n_kv_heads * hd;
  // o_proj.
  std::vector<float> dmixed(static_cast<size_t>(n * qw), 0.0f);  // [n, n_heads*hd]
  linear_backward_weight(pool, dy, n, d.d_model, a.mixed.data(), qw, g.o);
  linear_backward_input(pool, dy, n, d.d_model, w.o, qw, dmixed.data());

  std::vector<float> dq(static_cast<size_t>(n * qw), 0.0f);   // [n, n_heads*hd], rotated space
  std::vector<float> dk(static_cast<size_t>(n * kvw), 0.0f);  // [n, n_kv*hd], rotated space
  std::vector<float> dv(static_cast<size_t>(n * kvw), 0.0f);  // [n, n_kv*hd]
  const float inv_sqrt = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t group = d.n_heads / d.n_kv_heads;
  pool.parallel_for(d.n_seqs * d.n_kv_heads, [&](int64_t task) {
    const int64_t s = task / d.n_kv_heads, kvh = task % d.n_kv_heads;
    std::vector<float> ds(static_cast<size_t>(T * T));  // [T, T]: dP, then dS
    const float* k = &a.k[s * T * kvw + kvh * hd];  // [T, hd], row stride kvw
    const float* v = &a.v[s * T * kvw + kvh * hd];
    float* dks = &dk[s * T * kvw + kvh * hd];
    float* dvs = &dv[s * T * kvw + kvh * hd];
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      const float* p = &a.probs[(s * d.n_heads + h) * T * T];  // [T, T], 0 where masked
      const float* dout = &dmixed[s * T * qw + h * hd];        // [T, hd], row stride qw
      const float* q = &a.q[s * T * qw + h * hd];
      gemm_on_this_thread(true, false, T, hd, T, 1.0f, p, T, dout, qw, 1.0f, dvs, kvw);          // dV += P^T dO
      gemm_on_this_thread(false, true, T, T, hd, 1.0f, dout, qw, v, kvw, 0.0f, ds.data(), T);     // dP = dO V^T
      for (int64_t i = 0; i < T; ++i) {
        const float* pi = p + i * T;
        float* di = ds.data() + i * T;
        double dot_pdp = 0;
        for (int64_t j = 0; j < T; ++j) dot_pdp += static_cast<double>(pi[j]) * di[j];
        const float c = static_cast<float>(dot_pdp);
        for (int64_t j = 0; j < T; ++j) di[j] = pi[j] * (di[j] - c);  // 0 where masked (P = 0)
      }
      gemm_on_this_thread(false, false, T, hd, T, inv_sqrt, ds.data(), T, k, kvw, 1.0f, &dq[s * T * qw + h * hd], qw);
      gemm_on_this_thread(true, false, T, hd, T, inv_sqrt, ds.data(), T, q, qw, 1.0f, dks, kvw);  // dK += dS^T Q
    }
  });
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = t % T;
    for (int64_t h = 0; h < d.n_heads; ++h) rope_rotate(&dq[t * qw + h * hd], hd, pos, inv_freq, true);
    for (int64_t h = 0; h < d.n_kv_heads; ++h) rope_rotate(&dk[t * kvw + h * hd], hd, pos, inv_freq, true);
  }
  linear_backward_weight(pool, dq.data(), n, qw, x, d.d_model, g.q);
  linear_backward_weight(pool, dk.data(), n, kvw, x, d.d_model, g.k);
  linear_backward_weight(pool, dv.data(), n, kvw, x, d.d_model, g.v);
  linear_backward_input(pool, dq.data(), n, qw, w.q, d.d_model, dx);
  linear_backward_input(pool, dk.data(), n, kvw, w.k, d.d_model, dx);
  linear_backward_input(pool, dv.data(), n, kvw, w.v, d.d_model, dx);
}

}  // namespace moepp
