// Byte and FLOP accounting for `moepp bench` (see forward_cost.h). FLOPs are 2 per weight per
// token for every matrix a token passes through, plus 4 x head_dim per head and attended key
// (scores and the weighted sum of values).
#include "bench/forward_cost.h"

#include <algorithm>
#include <map>
#include <vector>

namespace moepp {
namespace {

double params(const Weight& w) { return static_cast<double>(w.rows) * static_cast<double>(w.cols); }

}  // namespace

ForwardCost& ForwardCost::operator+=(const ForwardCost& o) {
  bytes += o.bytes;
  flops += o.flops;
  slots += o.slots;
  zc_slots += o.zc_slots;
  ffn_slots += o.ffn_slots;
  return *this;
}

std::vector<ForwardCost> moe_layer_kernel_costs(const MoeLayerSpec& spec, const MoeLayerWeights& w, int64_t d_model,
                                                const RoutingPlan& plan, bool has_prev_logits) {
  const double n = static_cast<double>(plan.n_tokens);
  ForwardCost router;
  router.bytes += static_cast<double>(w.router.w1.nbytes() + w.router.w2.nbytes());
  router.flops += 2 * n * (params(w.router.w1) + params(w.router.w2));
  if (has_prev_logits && spec.router.gating_residual && !w.router.gate_map.empty()) {
    router.bytes += static_cast<double>(w.router.gate_map.nbytes());
    router.flops += 2 * n * params(w.router.gate_map);
  }
  // Per expert: its slots, its weights read once, the FLOPs of every slot.
  std::vector<ForwardCost> experts(static_cast<size_t>(spec.n_experts()));
  for (int32_t e : plan.experts) {
    ForwardCost& c = experts[static_cast<size_t>(e)];
    const ExpertWeights& ew = w.experts[static_cast<size_t>(e)];
    const bool first = c.slots == 0;
    ++c.slots;
    switch (spec.kinds[static_cast<size_t>(e)]) {
      case ExpertKind::kFfn:
        ++c.ffn_slots;
        c.flops += 2 * (params(ew.gate_up) + params(ew.down)) + 4.0 * static_cast<double>(spec.ffn_width[e]);
        if (first) c.bytes += static_cast<double>(ew.gate_up.nbytes() + ew.down.nbytes());
        break;
      case ExpertKind::kConstant:
        ++c.zc_slots;
        c.flops += 2 * params(ew.constant_gate) + 4.0 * static_cast<double>(d_model);
        if (first) c.bytes += static_cast<double>(ew.constant_gate.nbytes() + ew.constant_value.nbytes());
        break;
      case ExpertKind::kCopy:
      case ExpertKind::kZero:
        ++c.zc_slots;
        break;
    }
  }
  // Zero and copy experts' slots are counted with the router's kernel: they run none of their own.
  std::vector<ForwardCost> kernels{router};
  for (const ForwardCost& c : experts) {
    if (c.bytes > 0 || c.flops > 0) kernels.push_back(c);
    else kernels.front() += c;  // only slots: nothing read, nothing computed
  }
  return kernels;
}

ForwardCost moe_layer_cost(const MoeLayerSpec& spec, const MoeLayerWeights& w, int64_t d_model,
                           const RoutingPlan& plan, bool has_prev_logits) {
  ForwardCost total;
  for (const ForwardCost& k : moe_layer_kernel_costs(spec, w, d_model, plan, has_prev_logits)) total += k;
  return total;
}

double roofline_seconds(const std::vector<ForwardCost>& kernels, double read_gb_s, double peak_gflop_s) {
  if (read_gb_s <= 0 || peak_gflop_s <= 0) return 0;
  double seconds = 0;
  for (const ForwardCost& k : kernels) seconds += std::max(k.bytes / (read_gb_s * 1e9), k.flops / (peak_gflop_s * 1e9));
  return seconds;
}

void CostCounter::begin(const Batch& batch, const KvCache& cache) {
  current_ = ForwardCost();
  const int64_t window = model_.config().sliding_window;
  tokens_ = batch.size();
  outputs_ = batch.n_outputs();
  attended_ = 0;
  std::map<int32_t, int64_t> context_after;  // sequence -> positions cached after the forward
  for (int64_t t = 0; t < batch.size(); ++t) {
    const int64_t keys = batch.positions[t] + 1;
    attended_ += static_cast<double>(window > 0 ? std::min(keys, window) : keys);
    int64_t& after = context_after[batch.seq_ids[t]];
    after = std::max({after, keys, cache.length(batch.seq_ids[t])});
  }
  kv_rows_ = 0;
  for (const auto& [seq, rows] : context_after) kv_rows_ += static_cast<double>(rows);
  kv_element_bytes_ = cache.row_bytes() / static_cast<double>(cache.head_dim());
}

void CostCounter::on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) {
  const LayerWeights& lw = model_.weights().layers[static_cast<size_t>(layer)];
  current_ += moe_layer_cost(model_.config().layers[static_cast<size_t>(layer)], lw.moe, model_.config().d_model, plan,
                             layer > 0);
}

ForwardCost CostCounter::end() {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  ForwardCost dense;
  const double n_tokens = static_cast<double>(tokens_);
  const double attended = attended_;
  const double kv_rows = kv_rows_;
  const double bytes_per_embed_row = w.embed.rows > 0 ? static_cast<double>(w.embed.nbytes()) / static_cast<double>(w.embed.rows) : 0;
  dense.bytes += n_tokens * bytes_per_embed_row;
  for (const LayerWeights& lw : w.layers) {
    const AttentionWeights& a = lw.attention;
    dense.bytes += static_cast<double>(lw.input_norm.nbytes() + lw.post_norm.nbytes() + a.q.nbytes() + a.k.nbytes() +
                                       a.v.nbytes() + a.o.nbytes());
    dense.flops += 2.0 * n_tokens * (params(a.q) + params(a.k) + params(a.v) + params(a.o));
    dense.flops += 4.0 * static_cast<double>(c.n_heads * c.head_dim) * attended;
    dense.bytes += 2.0 * kv_rows * static_cast<double>(c.n_kv_heads * c.head_dim) * kv_element_bytes_;
  }
  if (outputs_ > 0) {
    dense.bytes += static_cast<double>(w.final_norm.nbytes() + w.lm_head.nbytes());
    dense.flops += 2.0 * static_cast<double>(outputs_) * params(w.lm_head);
  }
  current_ += dense;
  total_ += current_;
  return current_;
}

}  // namespace moepp
