// Forward and backward of the MoE layer. Routing follows src/moe/routing.cc exactly (same
// std, same tie rule); the backward chain is
//   dy -> (slot weights, expert outputs) -> renormalisation -> softmax -> std norm -> logits
//   -> (router network, gate_map and the previous layer's logits).
#include "train/moe_grad.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "moe/routing.h"
#include "ops/elementwise.h"
#include "train/linear.h"

namespace moepp {
namespace {

inline float sigmoid(float a) { return 1.0f / (1.0f + std::exp(-a)); }

}  // namespace

void moe_train_forward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeightsF32& w, const float* x,
                       int64_t n, int64_t d, const float* prev_logits, const CapacityOptions& capacity,
                       MoeActivations* a, float* y) {
  const RouterSpec& r = spec.router;
  const int64_t N = spec.n_experts();
  const int k = r.top_k;
  a->n_tokens = n;
  a->raw_logits.assign(static_cast<size_t>(n * N), 0.0f);
  if (r.network == RouterNetwork::kLinear) {
    linear_forward(pool, x, n, d, w.router_w1, N, a->raw_logits.data());
  } else {
    a->router_hidden.resize(static_cast<size_t>(n * r.hidden));
    linear_forward(pool, x, n, d, w.router_w1, r.hidden, a->router_hidden.data());
    for (float& h : a->router_hidden) h = std::tanh(h);
    linear_forward(pool, a->router_hidden.data(), n, r.hidden, w.router_w2, N, a->raw_logits.data());
  }
  if (r.gating_residual && prev_logits != nullptr) {
    std::vector<float> residual(static_cast<size_t>(n * N));  // [n, N]
    linear_forward(pool, prev_logits, n, N, w.gate_map, N, residual.data());
    for (size_t i = 0; i < residual.size(); ++i) a->raw_logits[i] += residual[i];
  }

  a->std_scale.assign(static_cast<size_t>(n), 1.0f);
  a->probs.resize(static_cast<size_t>(n * N));
  a->experts.resize(static_cast<size_t>(n * k));
  a->weights.resize(static_cast<size_t>(n * k));
  std::vector<float> z(static_cast<size_t>(N));
  for (int64_t t = 0; t < n; ++t) {
    const float* l = &a->raw_logits[t * N];
    std::copy(l, l + N, z.begin());
    if (r.logit_std_norm) {
      a->std_scale[t] = sample_std(l, N) / r.logit_norm_std;
      for (float& v : z) v /= a->std_scale[t];
    }
    float* p = &a->probs[t * N];
    std::copy(z.begin(), z.end(), p);
    softmax_inplace(p, N);
    int32_t* sel = &a->experts[t * k];
    float* wt = &a->weights[t * k];
    if (r.scoring == RouterScoring::kSoftmaxThenTopK) {
      top_k_indices(p, N, k, sel);
      for (int j = 0; j < k; ++j) wt[j] = p[sel[j]];
      if (r.zero_expert_gets_no_weight)
        for (int j = 0; j < k; ++j)
          if (spec.kinds[sel[j]] == ExpertKind::kZero) wt[j] = 0.0f;
      if (r.renormalize) {
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += wt[j];
        // Every slot on a zero expert: inference divides 0/0; training keeps the weights at 0.
        for (int j = 0; j < k; ++j) wt[j] = sum > 0 ? wt[j] / sum : 0.0f;
      }
    } else {  // kTopKThenSoftmax: top-k of the (normalised) logits, softmax over the k
      top_k_indices(z.data(), N, k, sel);
      for (int j = 0; j < k; ++j) wt[j] = z[sel[j]];
      softmax_inplace(wt, k);
    }
    for (int j = 0; j < k; ++j) wt[j] *= r.scale;
  }

  a->kept.assign(static_cast<size_t>(n * k), 1);
  a->n_dropped = 0;
  if (capacity.factor > 0) {
    const double t_eff = static_cast<double>(capacity.per_slot ? n * k : n);
    const double n_ffn = static_cast<double>(spec.count(ExpertKind::kFfn));
    const double denom = capacity.tau * n_ffn + static_cast<double>(N) - n_ffn;
    std::vector<int64_t> left(static_cast<size_t>(N));
    for (int64_t e = 0; e < N; ++e) {
      const double eta = spec.kinds[e] == ExpertKind::kFfn ? capacity.tau : 1.0;
      left[e] = static_cast<int64_t>(std::ceil(capacity.factor * eta * t_eff / denom));
    }
    for (int j = 0; j < k; ++j)
      for (int64_t t = 0; t < n; ++t) {
        const int32_t e = a->experts[t * k + j];
        if (left[e] > 0) {
          --left[e];
        } else {
          a->kept[t * k + j] = 0;
          ++a->n_dropped;
        }
      }
  }

  // Experts see x * input_scale (MoE++ without moe_feature_no_mul_topk); the router saw x.
  a->scaled_x.assign(x, x + n * d);
  if (spec.input_scale != 1.0f)
    for (float& v : a->scaled_x) v *= spec.input_scale;
  const float* xs = a->scaled_x.data();
  a->slot_out.assign(static_cast<size_t>(n * k * d), 0.0f);
  a->const_alpha.assign(static_cast<size_t>(n * k * 2), 0.0f);
  a->ffn_slots.assign(static_cast<size_t>(N), {});
  a->ffn_hidden.assign(static_cast<size_t>(N), {});
  a->ffn_act.assign(static_cast<size_t>(N), {});
  for (int64_t slot = 0; slot < n * k; ++slot) {
    const int32_t e = a->experts[slot];
    const int64_t t = slot / k;
    float* out = &a->slot_out[slot * d];
    if (!a->kept[slot]) continue;  // dropped: its output stays 0
    switch (spec.kinds[e]) {
      case ExpertKind::kFfn: a->ffn_slots[e].push_back(slot); break;
      case ExpertKind::kZero: break;
      case ExpertKind::kCopy: std::copy(xs + t * d, xs + (t + 1) * d, out); break;
      case ExpertKind::kConstant: {
        // [a1, a2] = softmax(Wc xs); out = a1 xs + a2 v.
        float* al = &a->const_alpha[slot * 2];
        for (int i = 0; i < 2; ++i) {
          float s = 0;
          for (int64_t c = 0; c < d; ++c) s += w.constant_gate[e][i * d + c] * xs[t * d + c];
          al[i] = s;
        }
        softmax_inplace(al, 2);
        for (int64_t c = 0; c < d; ++c) out[c] = al[0] * xs[t * d + c] + al[1] * w.constant_value[e][c];
        break;
      }
    }
  }
  for (int64_t e = 0; e < N; ++e) {
    const std::vector<int64_t>& slots = a->ffn_slots[e];
    if (slots.empty()) continue;
    const int64_t m = static_cast<int64_t>(slots.size()), de = spec.ffn_width[e];
    std::vector<float> xe(static_cast<size_t>(m * d));  // [m, d] gathered inputs
    for (int64_t i = 0; i < m; ++i) std::copy(xs + (slots[i] / k) * d, xs + (slots[i] / k + 1) * d, &xe[i * d]);
    std::vector<float>& hid = a->ffn_hidden[e];  // [m, 2 de]
    hid.resize(static_cast<size_t>(m * 2 * de));
    linear_forward(pool, xe.data(), m, d, w.gate_up[e], 2 * de, hid.data());
    std::vector<float>& act = a->ffn_act[e];  // [m, de]
    act.resize(static_cast<size_t>(m * de));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < de; ++j) act[i * de + j] = silu(hid[i * 2 * de + j]) * hid[i * 2 * de + de + j];
    std::vector<float> ye(static_cast<size_t>(m * d));  // [m, d]
    linear_forward(pool, act.data(), m, de, w.down[e], d, ye.data());
    for (int64_t i = 0; i < m; ++i) std::copy(&ye[i * d], &ye[(i + 1) * d], &a->slot_out[slots[i] * d]);
  }
  for (int64_t t = 0; t < n; ++t) {
    float* yt = y + t * d;
    std::fill(yt, yt + d, 0.0f);
    for (int j = 0; j < k; ++j) {
      const float wj = a->weights[t * k + j];
      const float* o = &a->slot_out[(t * k + j) * d];
      for (int64_t c = 0; c < d; ++c) yt[c] += wj * o[c];
    }
  }
}

void moe_train_backward(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeightsF32& w, const float* x,
                        int64_t n, int64_t d, const float* prev_logits, const MoeActivations& a, const float* dy,
                        const float* d_raw, const float* d_probs, float* dx, float* d_prev, const MoeGradsF32& g) {
  const RouterSpec& r = spec.router;
  const int64_t N = spec.n_experts();
  const int k = r.top_k;
  const float* xs = a.scaled_x.data();

  // Slot weights: dw[t, j] = dy_t . out_slot.
  std::vector<float> dw(static_cast<size_t>(n * k));  // [n, k]
  for (int64_t slot = 0; slot < n * k; ++slot) {
    const float* o = &a.slot_out[slot * d];
    const float* g_t = dy + (slot / k) * d;
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += static_cast<double>(g_t[c]) * o[c];
    dw[slot] = static_cast<float>(s);
  }

  // Experts: dxs = dL/d(scaled x).
  std::vector<float> dxs(static_cast<size_t>(n * d), 0.0f);  // [n, d]
  for (int64_t slot = 0; slot < n * k; ++slot) {
    const int32_t e = a.experts[slot];
    const int64_t t = slot / k;
    const float wt = a.weights[slot];
    if (!a.kept[slot]) continue;
    const float* g_t = dy + t * d;
    float* dxt = &dxs[t * d];
    if (spec.kinds[e] == ExpertKind::kCopy) {
      for (int64_t c = 0; c < d; ++c) dxt[c] += wt * g_t[c];
    } else if (spec.kinds[e] == ExpertKind::kConstant) {
      const float* al = &a.const_alpha[slot * 2];
      const float* v = w.constant_value[e];
      const float* wc = w.constant_gate[e];
      double da0 = 0, da1 = 0;
      for (int64_t c = 0; c < d; ++c) {
        da0 += static_cast<double>(wt * g_t[c]) * xs[t * d + c];
        da1 += static_cast<double>(wt * g_t[c]) * v[c];
      }
      const float mean = static_cast<float>(al[0] * da0 + al[1] * da1);
      const float dl0 = al[0] * (static_cast<float>(da0) - mean);
      const float dl1 = al[1] * (static_cast<float>(da1) - mean);
      float* gwc = g.constant_gate[e];
      float* gv = g.constant_value[e];
      for (int64_t c = 0; c < d; ++c) {
        gwc[c] += dl0 * xs[t * d + c];
        gwc[d + c] += dl1 * xs[t * d + c];
        gv[c] += al[1] * wt * g_t[c];
        dxt[c] += al[0] * wt * g_t[c] + dl0 * wc[c] + dl1 * wc[d + c];
      }
    }
  }
  for (int64_t e = 0; e < N; ++e) {
    const std::vector<int64_t>& slots = a.ffn_slots[e];
    if (slots.empty()) continue;
    const int64_t m = static_cast<int64_t>(slots.size()), de = spec.ffn_width[e];
    std::vector<float> dye(static_cast<size_t>(m * d));  // [m, d] = weight * dy of the token
    std::vector<float> xe(static_cast<size_t>(m * d));   // [m, d]
    for (int64_t i = 0; i < m; ++i) {
      const int64_t t = slots[i] / k;
      const float wt = a.weights[slots[i]];
      for (int64_t c = 0; c < d; ++c) dye[i * d + c] = wt * dy[t * d + c];
      std::copy(xs + t * d, xs + (t + 1) * d, &xe[i * d]);
    }
    const std::vector<float>& hid = a.ffn_hidden[e];
    const std::vector<float>& act = a.ffn_act[e];
    linear_backward_weight(pool, dye.data(), m, d, act.data(), de, g.down[e]);
    std::vector<float> dact(static_cast<size_t>(m * de), 0.0f);  // [m, de]
    linear_backward_input(pool, dye.data(), m, d, w.down[e], de, dact.data());
    std::vector<float> dhid(static_cast<size_t>(m * 2 * de));  // [m, 2 de]
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < de; ++j) {
        const float ga = hid[i * 2 * de + j], up = hid[i * 2 * de + de + j];
        const float sg = sigmoid(ga);
        const float da = dact[i * de + j];
        dhid[i * 2 * de + j] = da * up * sg * (1.0f + ga * (1.0f - sg));  // silu'(a) = s (1 + a (1 - s))
        dhid[i * 2 * de + de + j] = da * ga * sg;
      }
    linear_backward_weight(pool, dhid.data(), m, 2 * de, xe.data(), d, g.gate_up[e]);
    std::vector<float> dxe(static_cast<size_t>(m * d), 0.0f);  // [m, d]
    linear_backward_input(pool, dhid.data(), m, 2 * de, w.gate_up[e], d, dxe.data());
    for (int64_t i = 0; i < m; ++i) {
      float* dxt = &dxs[(slots[i] / k) * d];
      for (int64_t c = 0; c < d; ++c) dxt[c] += dxe[i * d + c];
    }
  }
  for (int64_t i = 0; i < n * d; ++i) dx[i] += spec.input_scale * dxs[i];

  // Router: dl = dL/d(raw logits), [n, N].
  std::vector<float> dl(static_cast<size_t>(n * N), 0.0f);
  std::vector<double> dp(static_cast<size_t>(N)), dz(static_cast<size_t>(N)), du(static_cast<size_t>(k));
  for (int64_t t = 0; t < n; ++t) {
    const float* p = &a.probs[t * N];
    const int32_t* sel = &a.experts[t * k];
    const float* wt = &a.weights[t * k];
    for (int64_t i = 0; i < N; ++i) dp[i] = d_probs ? d_probs[t * N + i] : 0.0;
    std::fill(dz.begin(), dz.end(), 0.0);
    // u_j = w_j / scale: the weights before the router's scale factor.
    double sum_udu = 0;
    for (int j = 0; j < k; ++j) {
      du[j] = static_cast<double>(r.scale) * dw[t * k + j];
      sum_udu += du[j] * (wt[j] / r.scale);
    }
    if (r.scoring == RouterScoring::kSoftmaxThenTopK) {
      double sum_q = 0;  // S = sum of the (zero-rule) selected probabilities
      for (int j = 0; j < k; ++j) {
        const bool zeroed = r.zero_expert_gets_no_weight && spec.kinds[sel[j]] == ExpertKind::kZero;
        if (!zeroed) sum_q += p[sel[j]];
      }
      for (int j = 0; j < k; ++j) {
        const bool zeroed = r.zero_expert_gets_no_weight && spec.kinds[sel[j]] == ExpertKind::kZero;
        if (zeroed) continue;
        double dq = du[j];
        if (r.renormalize) dq = sum_q > 0 ? (du[j] - sum_udu) / sum_q : 0.0;
        dp[sel[j]] += dq;
      }
    } else {
      // u = softmax(z_sel): dz_sel_j = u_j (du_j - sum u du).
      for (int j = 0; j < k; ++j) dz[sel[j]] += (wt[j] / r.scale) * (du[j] - sum_udu);
    }
    double sum_pdp = 0;
    for (int64_t i = 0; i < N; ++i) sum_pdp += p[i] * dp[i];
    for (int64_t i = 0; i < N; ++i) dz[i] += p[i] * (dp[i] - sum_pdp);
    float* dlt = &dl[t * N];
    const float* l = &a.raw_logits[t * N];
    if (r.logit_std_norm) {
      // z = l / sc, sc = s / lambda, s = sample std of l:
      // dl_j = dz_j / sc - (sum_i dz_i z_i) (l_j - mean) / ((N - 1) s^2).
      const double sc = a.std_scale[t], s = sc * r.logit_norm_std;
      double mean = 0, sum_dzz = 0;
      for (int64_t i = 0; i < N; ++i) mean += l[i];
      mean /= static_cast<double>(N);
      for (int64_t i = 0; i < N; ++i) sum_dzz += dz[i] * (l[i] / sc);
      for (int64_t i = 0; i < N; ++i)
        dlt[i] = static_cast<float>(dz[i] / sc - sum_dzz * (l[i] - mean) / (static_cast<double>(N - 1) * s * s));
    } else {
      for (int64_t i = 0; i < N; ++i) dlt[i] = static_cast<float>(dz[i]);
    }
    if (d_raw != nullptr)
      for (int64_t i = 0; i < N; ++i) dlt[i] += d_raw[t * N + i];
  }
  if (r.gating_residual && prev_logits != nullptr) {
    linear_backward_weight(pool, dl.data(), n, N, prev_logits, N, g.gate_map);
    linear_backward_input(pool, dl.data(), n, N, w.gate_map, N, d_prev);
  }
  if (r.network == RouterNetwork::kLinear) {
    linear_backward_weight(pool, dl.data(), n, N, x, d, g.router_w1);
    linear_backward_input(pool, dl.data(), n, N, w.router_w1, d, dx);
  } else {
    const int64_t H = r.hidden;
    linear_backward_weight(pool, dl.data(), n, N, a.router_hidden.data(), H, g.router_w2);
    std::vector<float> dh(static_cast<size_t>(n * H), 0.0f);  // [n, hidden]
    linear_backward_input(pool, dl.data(), n, N, w.router_w2, H, dh.data());
    for (size_t i = 0; i < dh.size(); ++i) dh[i] *= 1.0f - a.router_hidden[i] * a.router_hidden[i];
    linear_backward_weight(pool, dh.data(), n, H, x, d, g.router_w1);
    linear_backward_input(pool, dh.data(), n, H, w.router_w1, d, dx);
  }
}

}  // namespace moepp
