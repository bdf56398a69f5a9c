// Cross-entropy in double accumulation (log-sum-exp) and the load-balance loss.
#include "train/losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moepp {

double cross_entropy(const float* logits, int64_t n, int64_t vocab, const int32_t* targets, float grad_scale,
                     float* dlogits, int64_t* n_valid) {
  int64_t count = 0;
  for (int64_t t = 0; t < n; ++t) count += targets[t] != kIgnoreLabel;
  *n_valid = count;
  if (dlogits != nullptr) std::fill(dlogits, dlogits + n * vocab, 0.0f);
  if (count == 0) return 0.0;
  double total = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == kIgnoreLabel) continue;
    const float* l = logits + t * vocab;
    const float mx = *std::max_element(l, l + vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
    const double lse = mx + std::log(sum);
    total += lse - l[targets[t]];
    if (dlogits != nullptr) {
      const double g = static_cast<double>(grad_scale) / static_cast<double>(count);
      float* dl = dlogits + t * vocab;
      for (int64_t v = 0; v < vocab; ++v) dl[v] = static_cast<float>(g * std::exp(l[v] - lse));
      dl[targets[t]] -= static_cast<float>(g);
    }
  }
  return total / static_cast<double>(count);
}

double load_balance_loss(const MoeLayerSpec& spec, const MoeActivations& act, const LossOptions& o, float coef,
                         float* d_probs) {
  const int64_t n = act.n_tokens, N = spec.n_experts();
  const int k = spec.router.top_k;
  if (n == 0) return 0.0;
  std::vector<double> f(static_cast<size_t>(N), 0.0), P(static_cast<size_t>(N), 0.0);
  for (int64_t s = 0; s < n * k; ++s) f[act.experts[s]] += 1.0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < N; ++i) P[i] += act.probs[t * N + i];
  const double scale = o.scale_by_n_experts ? static_cast<double>(N) : 1.0;
  double loss = 0;
  std::vector<double> eta_f(static_cast<size_t>(N));  // scale * eta_i * f_i
  for (int64_t i = 0; i < N; ++i) {
    const double eta = spec.kinds[i] == ExpertKind::kFfn ? 1.0 : static_cast<double>(o.tau);
    eta_f[i] = scale * eta * f[i] / static_cast<double>(n);
    loss += eta_f[i] * P[i] / static_cast<double>(n);
  }
  if (d_probs != nullptr)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < N; ++i)
        d_probs[t * N + i] = static_cast<float>(coef * eta_f[i] / static_cast<double>(n));
  return loss;
}

}  // namespace moepp
