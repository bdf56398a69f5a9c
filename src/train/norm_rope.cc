// RMSNorm backward: with u = x r, dL/dx_j = r (g_j - u_j mean_i(g_i u_i)) where g = dy * w.
#include "train/norm_rope.h"

#include <cmath>

namespace moepp {

void rms_norm_forward(const float* x, int64_t n, int64_t d, const float* w, float eps, float* y, float* inv_rms) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * d;
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xt[j]) * xt[j];
    const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(d)) + eps);
    inv_rms[t] = r;
    for (int64_t j = 0; j < d; ++j) y[t * d + j] = w[j] * (xt[j] * r);
  }
}

void rms_norm_backward(const float* x, const float* inv_rms, int64_t n, int64_t d, const float* w, const float* dy,
                       float* dx, float* dw) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * d;
    const float* gt = dy + t * d;
    const float r = inv_rms[t];
    double dot = 0;  // sum_j g_j u_j
    for (int64_t j = 0; j < d; ++j) {
      const float u = xt[j] * r;
      dw[j] += gt[j] * u;
      dot += static_cast<double>(gt[j] * w[j]) * u;
    }
    const float mean = static_cast<float>(dot / static_cast<double>(d));
    for (int64_t j = 0; j < d; ++j) dx[t * d + j] += r * (gt[j] * w[j] - xt[j] * r * mean);
  }
}

void rope_rotate(float* v, int64_t head_dim, int64_t pos, const float* inv_freq, bool inverse) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(angle);
    const float s = inverse ? -std::sin(angle) : std::sin(angle);
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace moepp
