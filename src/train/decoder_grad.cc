// h = embed(tokens); per layer h += Attn(RMSNorm(h)); h += MoE(RMSNorm(h)); logits =
// lm_head(RMSNorm(h)); loss = CE + beta * L_b. The backward walks the same steps in reverse;
// the gating residual carries a gradient from each layer's raw logits to the previous layer's.
#include "train/decoder_grad.h"

#include <cmath>

#include "train/attention_grad.h"
#include "train/linear.h"
#include "train/norm_rope.h"

namespace moepp {
namespace {

struct LayerActivations {
  std::vector<float> h_in;      // [n, d] residual stream entering the layer
  std::vector<float> normed1;   // [n, d] attention input
  std::vector<float> rms1;      // [n]
  AttentionActivations attn;
  std::vector<float> h_mid;     // [n, d] after the attention residual
  std::vector<float> normed2;   // [n, d] MoE input
  std::vector<float> rms2;      // [n]
  MoeActivations moe;
};

std::vector<float> rope_inv_freq(const ModelConfig& c) {  // as Model (HF, f32)
  std::vector<float> inv_freq;
  for (int64_t j = 0; j < c.head_dim / 2; ++j)
    inv_freq.push_back(1.0f / std::pow(static_cast<float>(c.rope_theta),
                                       static_cast<float>(2 * j) / static_cast<float>(c.head_dim)));
  return inv_freq;
}

template <typename T>
MoeTensors<T> moe_tensors(T* base, const LayerParamRefs& L) {
  MoeTensors<T> m;
  auto ptr = [&](const ParamRef& r) -> T* { return r.valid() ? base + r.offset : nullptr; };
  m.router_w1 = ptr(L.router_w1);
  m.router_w2 = ptr(L.router_w2);
  m.gate_map = ptr(L.gate_map);
  for (const ExpertParamRefs& e : L.experts) {
    m.gate_up.push_back(ptr(e.gate_up));
    m.down.push_back(ptr(e.down));
    m.constant_gate.push_back(ptr(e.constant_gate));
    m.constant_value.push_back(ptr(e.constant_value));
  }
  return m;
}

}  // namespace

Status check_train_batch(const ModelConfig& c, const TrainBatch& b) {
  if (b.n_seqs <= 0 || b.seq_len <= 0)
    return Status::Error(str_format("train batch: expected at least one sequence of at least one token, got %lld x %lld",
                                    (long long)b.n_seqs, (long long)b.seq_len));
  const size_t n = static_cast<size_t>(b.n_seqs * b.seq_len);
  if (b.tokens.size() != n || b.targets.size() != n)
    return Status::Error(str_format("train batch: %zu tokens and %zu targets, expected %zu each", b.tokens.size(),
                                    b.targets.size(), n));
  for (size_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= c.vocab_size)
      return Status::Error(str_format("train batch: token %zu has id %d, expected [0, %lld)", i, b.tokens[i],
                                      (long long)c.vocab_size));
    if (b.targets[i] != kIgnoreLabel && (b.targets[i] < 0 || b.targets[i] >= c.vocab_size))
      return Status::Error(str_format("train batch: target %zu is %d, expected [0, %lld) or -100", i, b.targets[i],
                                      (long long)c.vocab_size));
  }
  return Status::Ok();
}

Result<LossReport> forward_backward(ThreadPool& pool, const TrainParams& params, const TrainBatch& batch,
                                    const LossOptions& options, float* grads, float grad_scale,
                                    const CapacityOptions& capacity) {
  const ModelConfig& c = params.config();
  MOEPP_RETURN_IF_ERROR(check_train_batch(c, batch));
  if (!(options.beta >= 0) || !(options.tau >= 0))
    return Status::Error(str_format("train: beta %g and tau %g must be non-negative", options.beta, options.tau));
  const int64_t n = batch.n_seqs * batch.seq_len, d = c.d_model, V = c.vocab_size, L = c.n_layers;
  const float* P = params.values().data();
  const std::vector<float> inv_freq = rope_inv_freq(c);
  const AttentionDims dims{d, c.n_heads, c.n_kv_heads, c.head_dim, c.sliding_window, batch.n_seqs, batch.seq_len};

  std::vector<LayerActivations> acts(static_cast<size_t>(L));
  std::vector<float> h(static_cast<size_t>(n * d));       // [n, d]
  std::vector<float> branch(static_cast<size_t>(n * d));  // [n, d]
  for (int64_t t = 0; t < n; ++t)
    std::copy(P + params.embed.offset + batch.tokens[t] * d, P + params.embed.offset + (batch.tokens[t] + 1) * d,
              h.begin() + t * d);
  for (int64_t l = 0; l < L; ++l) {
    const LayerParamRefs& R = params.layers[l];
    LayerActivations& A = acts[l];
    A.h_in = h;
    A.normed1.resize(h.size());
    A.rms1.resize(static_cast<size_t>(n));
    rms_norm_forward(h.data(), n, d, params.at(R.input_norm), c.rms_norm_eps, A.normed1.data(), A.rms1.data());
    const AttentionWeightsF32 aw{params.at(R.q), params.at(R.k), params.at(R.v), params.at(R.o)};
    attention_train_forward(pool, dims, aw, inv_freq.data(), A.normed1.data(), branch.data(), &A.attn);
    for (size_t i = 0; i < h.size(); ++i) h[i] += branch[i];
    A.h_mid = h;
    A.normed2.resize(h.size());
    A.rms2.resize(static_cast<size_t>(n));
    rms_norm_forward(h.data(), n, d, params.at(R.post_norm), c.rms_norm_eps, A.normed2.data(), A.rms2.data());
    const float* prev = l > 0 ? acts[l - 1].moe.raw_logits.data() : nullptr;
    moe_train_forward(pool, c.layers[l], moe_tensors<const float>(P, R), A.normed2.data(), n, d, prev,
                      capacity, &A.moe, branch.data());
    for (size_t i = 0; i < h.size(); ++i) h[i] += branch[i];
  }
  std::vector<float> final_normed(h.size()), final_rms(static_cast<size_t>(n));
  rms_norm_forward(h.data(), n, d, params.at(params.final_norm), c.rms_norm_eps, final_normed.data(), final_rms.data());
  std::vector<float> logits(static_cast<size_t>(n * V));  // [n, vocab]
  linear_forward(pool, final_normed.data(), n, d, params.at(params.lm_head), V, logits.data());

  LossReport report;
  std::vector<float> dlogits;
  if (grads != nullptr) dlogits.resize(logits.size());
  report.ce = cross_entropy(logits.data(), n, V, batch.targets.data(), grad_scale,
                            grads ? dlogits.data() : nullptr, &report.n_targets);
  const float layer_coef = options.layers == LayerAggregation::kMean ? 1.0f / static_cast<float>(L) : 1.0f;
  std::vector<std::vector<float>> d_probs(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const MoeLayerSpec& spec = c.layers[l];
    if (grads != nullptr) d_probs[l].resize(static_cast<size_t>(n * spec.n_experts()));
    const double lb = load_balance_loss(spec, acts[l].moe, options, grad_scale * options.beta * layer_coef,
                                        grads ? d_probs[l].data() : nullptr);
    report.balance_per_layer.push_back(lb);
    report.balance += layer_coef * lb;
    std::vector<int64_t> counts(static_cast<size_t>(spec.n_experts()), 0);
    for (int32_t e : acts[l].moe.experts) ++counts[e];
    report.expert_counts.push_back(std::move(counts));
    report.dropped.push_back(acts[l].moe.n_dropped);
  }
  report.loss = report.ce + options.beta * report.balance;
  if (grads == nullptr) return report;

  // Backward.
  float* G = grads;
  std::vector<float> dnormed(static_cast<size_t>(n * d), 0.0f);  // [n, d]
  linear_backward_weight(pool, dlogits.data(), n, V, final_normed.data(), d, G + params.lm_head.offset);
  linear_backward_input(pool, dlogits.data(), n, V, params.at(params.lm_head), d, dnormed.data());
  std::vector<float> dh(static_cast<size_t>(n * d), 0.0f);  // [n, d] gradient of the residual stream
  rms_norm_backward(h.data(), final_rms.data(), n, d, params.at(params.final_norm), dnormed.data(), dh.data(),
                    G + params.final_norm.offset);
  std::vector<float> d_raw;  // [n, n_experts] gradient of layer l's raw logits from layer l+1
  for (int64_t l = L - 1; l >= 0; --l) {
    const LayerParamRefs& R = params.layers[l];
    const LayerActivations& A = acts[l];
    const MoeLayerSpec& spec = c.layers[l];
    const float* prev = l > 0 ? acts[l - 1].moe.raw_logits.data() : nullptr;
    std::vector<float> d_prev;
    if (prev != nullptr && spec.router.gating_residual) d_prev.assign(static_cast<size_t>(n * spec.n_experts()), 0.0f);
    std::fill(dnormed.begin(), dnormed.end(), 0.0f);
    moe_train_backward(pool, spec, moe_tensors<const float>(P, R), A.normed2.data(), n, d, prev, A.moe,
                       dh.data(), d_raw.empty() ? nullptr : d_raw.data(), d_probs[l].data(), dnormed.data(),
                       d_prev.empty() ? nullptr : d_prev.data(), moe_tensors<float>(G, R));
    rms_norm_backward(A.h_mid.data(), A.rms2.data(), n, d, params.at(R.post_norm), dnormed.data(), dh.data(),
                      G + R.post_norm.offset);
    std::fill(dnormed.begin(), dnormed.end(), 0.0f);
    const AttentionWeightsF32 aw{params.at(R.q), params.at(R.k), params.at(R.v), params.at(R.o)};
    attention_train_backward(pool, dims, aw, inv_freq.data(), A.normed1.data(), A.attn, dh.data(), dnormed.data(),
                             AttentionGrads{G + R.q.offset, G + R.k.offset, G + R.v.offset, G + R.o.offset});
    rms_norm_backward(A.h_in.data(), A.rms1.data(), n, d, params.at(R.input_norm), dnormed.data(), dh.data(),
                      G + R.input_norm.offset);
    d_raw = std::move(d_prev);
  }
  for (int64_t t = 0; t < n; ++t) {
    float* ge = G + params.embed.offset + batch.tokens[t] * d;
    for (int64_t i = 0; i < d; ++i) ge[i] += dh[t * d + i];
  }
  return report;
}

}  // namespace moepp
