// Weighted sum of expert outputs, with zero-computation experts computed in place.
#include "moe/combine.h"

#include <algorithm>
#include <vector>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {

void combine(const MoeLayerSpec& spec, const MoeLayerWeights& w, const RoutingPlan& plan,
             const float* x, const float* slot_out, int64_t d_model, float* y, Precision p) {
  const int k = plan.top_k;
  std::vector<int> order(static_cast<size_t>(k));
  std::vector<float> expert_out(static_cast<size_t>(d_model));
  for (int64_t t = 0; t < plan.n_tokens; ++t) {
    const float* xt = x + t * d_model;
    float* yt = y + t * d_model;
    std::fill(yt, yt + d_model, 0.0f);
    for (int j = 0; j < k; ++j) order[j] = j;
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return plan.experts[t * k + a] < plan.experts[t * k + b];
    });
    for (int j : order) {
      const int64_t slot = t * k + j;
      const int32_t e = plan.experts[slot];
      const float weight = plan.weights[slot];
      const float* out = nullptr;
      switch (spec.kinds[e]) {
        case ExpertKind::kZero: continue;  // adds exactly 0 whatever its weight
        case ExpertKind::kFfn: out = slot_out + slot * d_model; break;
        case ExpertKind::kCopy: out = xt; break;
        case ExpertKind::kConstant: {
          // [a1, a2] = softmax(Wc x) in the activation dtype; out = a1 * x + a2 * v.
          const ExpertWeights& ew = w.experts[e];
          float a[2] = {p.round(dot_row(xt, ew.constant_gate, 0)), p.round(dot_row(xt, ew.constant_gate, 1))};
          softmax_inplace(a, 2);
          a[0] = p.round(a[0]);
          a[1] = p.round(a[1]);
          for (int64_t i = 0; i < d_model; ++i)
            expert_out[i] = p.round(p.round(a[0] * xt[i]) + p.round(a[1] * ew.constant_value.at(0, i)));
          out = expert_out.data();
          break;
        }
      }
      for (int64_t i = 0; i < d_model; ++i) yt[i] = p.round(yt[i] + p.round(out[i] * weight));
    }
  }
}

}  // namespace moepp
