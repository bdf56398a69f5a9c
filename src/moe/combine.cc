// Weighted sum of expert outputs, with zero-computation experts computed in place.
#include "moe/combine.h"

#include <algorithm>
#include <vector>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {
namespace {

constexpr int64_t kTokensPerTask = 16;

}  // namespace

void combine(ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, const RoutingPlan& plan,
             const float* x, const float* slot_out, int64_t d_model, float* y, Precision p) {
  const int k = plan.top_k;
  // Tokens are independent: ranges of them over the pool, the same bits however split.
  parallel_ranges(pool, plan.n_tokens, kTokensPerTask, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<int> order;
    thread_local std::vector<float> expert_out, value;  // [d_model]: a constant expert's output and vector
    order.resize(static_cast<size_t>(k));
    expert_out.resize(static_cast<size_t>(d_model));
    value.resize(static_cast<size_t>(d_model));
    for (int64_t t = t0; t < t1; ++t) {
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
            ew.constant_value.row_to_f32(0, value.data());
            constant_expert_output(xt, value.data(), a[0], a[1], d_model, expert_out.data(), p);
            out = expert_out.data();
            break;
          }
        }
        add_weighted(yt, out, plan.weights[slot], d_model, p);
      }
    }
  });
}

}  // namespace moepp
