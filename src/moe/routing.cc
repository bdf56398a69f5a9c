// Router math for every family (docs/moepp-spec.md §2.1-§2.4, checkpoint-formats.md §2.3, §3.3).
#include "moe/routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace moepp {
// Indices of the k largest scores, best first; exact ties go to the lower expert index.
void top_k_indices(const float* scores, int64_t n, int k, int32_t* out) {
  int32_t idx[kMaxExperts];
  std::iota(idx, idx + n, 0);
  std::partial_sort(idx, idx + k, idx + n, [&](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::copy(idx, idx + k, out);
}

// Sample standard deviation (divisor n-1, PyTorch's default), accumulated in double.
float sample_std(const float* x, int64_t n) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  return static_cast<float>(std::sqrt(ss / static_cast<double>(n - 1)));
}

void route(ThreadPool& pool, const MoeLayerSpec& spec, const RouterWeights& w, const float* x,
           int64_t n_tokens, const float* prev_logits, float* raw_logits, RoutingPlan* plan,
           Precision p) {
  const RouterSpec& r = spec.router;
  const int64_t n_experts = spec.n_experts();
  const int k = r.top_k;
  // The MoE++ router runs in f32 whatever the activation dtype (its input is upcast exactly).
  const Precision router_p = r.compute_in_f32 ? Precision{ComputeDType::kF32} : p;

  if (r.network == RouterNetwork::kLinear) {
    matmul(pool, x, n_tokens, w.w1, raw_logits, router_p);
  } else {
    std::vector<float> hidden(static_cast<size_t>(n_tokens * r.hidden));  // [n_tokens, hidden]
    matmul(pool, x, n_tokens, w.w1, hidden.data(), router_p);
    for (float& h : hidden) h = router_p.round(std::tanh(h));
    matmul(pool, hidden.data(), n_tokens, w.w2, raw_logits, router_p);
  }

  if (r.gating_residual && prev_logits != nullptr) {
    // gate_map keeps the weight dtype: in bf16 its input is rounded to bf16 and so is its output.
    std::vector<float> prev(prev_logits, prev_logits + n_tokens * n_experts);
    p.round(prev.data(), prev.size());
    std::vector<float> residual(prev.size());
    matmul(pool, prev.data(), n_tokens, w.gate_map, residual.data(), p);
    for (size_t i = 0; i < residual.size(); ++i) raw_logits[i] += residual[i];
  }

  plan->n_tokens = n_tokens;
  plan->top_k = k;
  plan->experts.assign(static_cast<size_t>(n_tokens * k), 0);
  plan->weights.assign(static_cast<size_t>(n_tokens * k), 0.0f);
  plan->scores.assign(static_cast<size_t>(n_tokens * n_experts), 0.0f);

  std::vector<float> z(static_cast<size_t>(n_experts));
  std::vector<float> pick(static_cast<size_t>(n_experts));  // the scores top-k selects from
  // A zero-computation-only draft selects among zero, copy and constant experts; the weights
  // and the logits passed on to the next layer stay those of the full router.
  auto selection_scores = [&]() -> const float* {
    if (!r.zero_computation_only) return z.data();
    for (int64_t e = 0; e < n_experts; ++e) pick[e] = spec.kinds[e] == ExpertKind::kFfn ? -INFINITY : z[e];
    return pick.data();
  };
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* logits = raw_logits + t * n_experts;
    std::copy(logits, logits + n_experts, z.begin());
    if (r.logit_std_norm) {
      const float scale = sample_std(z.data(), n_experts) / r.logit_norm_std;
      for (float& v : z) v /= scale;
    }
    int32_t* sel = plan->experts.data() + t * k;
    float* wt = plan->weights.data() + t * k;
    float* score = plan->scores.data() + t * n_experts;
    if (r.scoring == RouterScoring::kSoftmaxThenTopK) {
      softmax_inplace(z.data(), n_experts);
      std::copy(z.begin(), z.end(), score);  // the distribution it selects from
      top_k_indices(selection_scores(), n_experts, k, sel);
      for (int j = 0; j < k; ++j) wt[j] = z[sel[j]];
      if (r.zero_expert_gets_no_weight)
        for (int j = 0; j < k; ++j)
          if (spec.kinds[sel[j]] == ExpertKind::kZero) wt[j] = 0.0f;
      if (r.renormalize) {
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += wt[j];
        for (int j = 0; j < k; ++j) wt[j] /= sum;
      }
    } else {
      std::copy(z.begin(), z.end(), score);
      softmax_inplace(score, n_experts);
      top_k_indices(selection_scores(), n_experts, k, sel);
      for (int j = 0; j < k; ++j) wt[j] = z[sel[j]];
      if (r.scoring == RouterScoring::kTopKThenSoftmax) softmax_inplace(wt, k);
    }
    if (!r.multiply_scores) {
      for (int j = 0; j < k; ++j) wt[j] = 1.0f;
      continue;
    }
    for (int j = 0; j < k; ++j) {
      switch (r.rounding) {
        case WeightRounding::kNone: wt[j] *= r.scale; break;
        case WeightRounding::kToActivation: wt[j] = p.round(p.round(wt[j]) * r.scale); break;
      }
    }
  }
}

}  // namespace moepp
