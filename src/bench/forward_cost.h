// Bytes read and FLOPs of a forward pass, counted from the model's weights and the routing
// plans it produced: attention, norms, router, only the FFN experts actually selected (each
// read once per forward), embedding rows, lm_head and the KV cache. Zero and copy experts cost
// nothing; constant experts cost their two small vectors.
#pragma once

#include <cstdint>
#include <vector>

#include "layers/batch.h"
#include "layers/kv_cache.h"
#include "models/model.h"
#include "moe/routing.h"

namespace moepp {

struct ForwardCost {
  double bytes = 0;
  double flops = 0;
  int64_t slots = 0;      // (token, slot) pairs routed
  int64_t zc_slots = 0;   // ... to zero, copy or constant experts
  int64_t ffn_slots = 0;  // ... to FFN experts
  ForwardCost& operator+=(const ForwardCost& o);
  double zc_share() const { return slots > 0 ? static_cast<double>(zc_slots) / static_cast<double>(slots) : 0.0; }
};

// Cost of one MoE layer call from its plan: router (+ gating residual when has_prev_logits),
// the distinct experts selected and the per-slot expert FLOPs.
ForwardCost moe_layer_cost(const MoeLayerSpec& spec, const MoeLayerWeights& w, int64_t d_model,
                           const RoutingPlan& plan, bool has_prev_logits);

// The same cost split by the kernels that run it, whose sum is moe_layer_cost: the router first,
// then each expert selected, in expert order (an FFN expert's GEMM over all its tokens; a constant
// expert's two vectors). Copy and zero experts run no kernel: their slots count with the router's.
std::vector<ForwardCost> moe_layer_kernel_costs(const MoeLayerSpec& spec, const MoeLayerWeights& w, int64_t d_model,
                                                const RoutingPlan& plan, bool has_prev_logits);

// Seconds the kernels would take at the machine's limits, one after another: each the slower of
// reading its bytes at read_gb_s and computing its FLOPs at peak_gflop_s (a roofline per kernel).
// An expert with few tokens is bound by its read, so skipping slots saves time only down to it.
// Not a bound for every schedule: one kernel's read may overlap another's arithmetic, down to
// max(sum of bytes / read, sum of FLOPs / peak).
double roofline_seconds(const std::vector<ForwardCost>& kernels, double read_gb_s, double peak_gflop_s);

// Observer that counts a whole forward: call begin() before Model::forward, pass the counter
// as its observer, and end() after it.
class CostCounter : public ForwardObserver {
 public:
  explicit CostCounter(const Model& model) : model_(model) {}
  void begin(const Batch& batch, const KvCache& cache);
  void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) override;
  ForwardCost end();  // cost of the forward since begin(); also added to total()
  const ForwardCost& total() const { return total_; }
  void reset() { total_ = ForwardCost(); }

 private:
  const Model& model_;
  ForwardCost current_;
  ForwardCost total_;
  // Facts about the batch, taken in begin().
  int64_t tokens_ = 0;
  int64_t outputs_ = 0;
  double attended_ = 0;  // sum over tokens of the keys each one attends to
  double kv_rows_ = 0;   // cache rows read per layer: every cached position of every sequence, once
  double kv_element_bytes_ = 4;  // per value read: 2 for a bf16 cache, 1.125 for q8 (a 4-byte scale per 32)
};

}  // namespace moepp
