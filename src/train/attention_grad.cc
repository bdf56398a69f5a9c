// Attention backward, per (sequence, kv head) task so GQA gradients for a kv head are summed
// by one thread in a fixed order: with P = softmax(S), S = q.k / sqrt(hd),
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
    for (int64_t i = 0; i < T; ++i) {
      const float* qi = &a->q[(s * T + i) * qw + h * hd];
      float* p = &a->probs[((s * d.n_heads + h) * T + i) * T];
      const int64_t j0 = first_key(d, i);
      float mx = -INFINITY;
      for (int64_t j = j0; j <= i; ++j) {
        const float* kj = &a->k[(s * T + j) * kvw + kvh * hd];
        float dot = 0;
        for (int64_t c = 0; c < hd; ++c) dot += qi[c] * kj[c];
        p[j] = dot * inv_sqrt;
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      for (int64_t j = j0; j <= i; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      float* out = &a->mixed[(s * T + i) * qw + h * hd];
      for (int64_t j = j0; j <= i; ++j) {
        p[j] *= inv;
        const float* vj = &a->v[(s * T + j) * kvw + kvh * hd];
        for (int64_t c = 0; c < hd; ++c) out[c] += p[j] * vj[c];
      }
    }
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
    std::vector<float> ds(static_cast<size_t>(T));
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        const float* p = &a.probs[((s * d.n_heads + h) * T + i) * T];
        const float* dout = &dmixed[(s * T + i) * qw + h * hd];
        const int64_t j0 = first_key(d, i);
        double dot_pdp = 0;
        for (int64_t j = j0; j <= i; ++j) {
          const float* vj = &a.v[(s * T + j) * kvw + kvh * hd];
          float* dvj = &dv[(s * T + j) * kvw + kvh * hd];
          float dp = 0;
          for (int64_t c = 0; c < hd; ++c) {
            dp += dout[c] * vj[c];
            dvj[c] += p[j] * dout[c];
          }
          ds[j] = dp;
          dot_pdp += static_cast<double>(p[j]) * dp;
        }
        const float* qi = &a.q[(s * T + i) * qw + h * hd];
        float* dqi = &dq[(s * T + i) * qw + h * hd];
        for (int64_t j = j0; j <= i; ++j) {
          const float dsj = p[j] * (ds[j] - static_cast<float>(dot_pdp)) * inv_sqrt;
          const float* kj = &a.k[(s * T + j) * kvw + kvh * hd];
          float* dkj = &dk[(s * T + j) * kvw + kvh * hd];
          for (int64_t c = 0; c < hd; ++c) {
            dqi[c] += dsj * kj[c];
            dkj[c] += dsj * qi[c];
          }
        }
      }
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
