// MoE++ (model_type "MoE++"). Source of truth: SkyworkAI/MoE-plus-plus MoE++/modeling_moe_plus_plus.py
// (MoeForCausalLM) and moe_plus_plus_layer.py, as summarised in docs/moepp-spec.md.
// Deviations: expert counts per kind are data. The reference hard-codes 2 constant + 1 copy +
// 1 zero experts at the end of the table; that stays the default, and the extension keys
// num_constant_experts / num_copy_experts / num_zero_experts / num_experts_per_tok change it
// (e.g. the paper's 2B/(32+8)E shape). Every selected zero expert gets weight 0 (the
// reference checks index N-1, the only zero expert it has).
#include "models/family.h"

namespace moepp {
namespace {

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + ".mlp.moe."; }

Status parse_moepp(const ConfigReader& r, ModelConfig* c) {
  int64_t n_experts = 0;
  if (r.has("num_experts") && r.raw("num_experts").is_array()) {
    const auto& list = r.raw("num_experts");  // the reference uses element 0 for every layer
    if (list.empty() || !list[0].is_number_integer()) return r.error("num_experts", "a list whose first element is an integer");
    n_experts = list[0].get<int64_t>();
  } else {
    MOEPP_ASSIGN_OR_RETURN(n_experts, r.positive_int("num_experts"));
  }
  MOEPP_ASSIGN_OR_RETURN(int64_t n_const, r.int_or("num_constant_experts", 2));
  MOEPP_ASSIGN_OR_RETURN(int64_t n_copy, r.int_or("num_copy_experts", 1));
  MOEPP_ASSIGN_OR_RETURN(int64_t n_zero, r.int_or("num_zero_experts", 1));
  MOEPP_ASSIGN_OR_RETURN(int64_t top_k, r.int_or("num_experts_per_tok", 2));
  if (n_const < 0 || n_copy < 0 || n_zero < 0) return r.error("num_constant_experts", "non-negative expert counts");
  const int64_t n_ffn = n_experts - n_const - n_copy - n_zero;
  if (n_ffn < 1 || n_experts > kMaxExperts)
    return r.error("num_experts", "at most " + std::to_string(kMaxExperts) + " experts, more than the " +
                                      std::to_string(n_const + n_copy + n_zero) + " zero-computation experts");
  if (top_k < 1 || top_k > n_experts) return r.error("num_experts_per_tok", "between 1 and num_experts");
  MOEPP_ASSIGN_OR_RETURN(int64_t interval, r.int_or("moe_expert_interval", 1));
  if (interval != 1) return r.error("moe_expert_interval", "1 (other values do not run in the reference code)");
  MOEPP_ASSIGN_OR_RETURN(int64_t d_expert, r.positive_int("intermediate_size"));
  // Defaults are the reference code's, not the released config's (docs/moepp-spec.md §1.1).
  MOEPP_ASSIGN_OR_RETURN(bool two_layer_gate, r.bool_or("moe_2layer_gate", true));
  MOEPP_ASSIGN_OR_RETURN(bool logits_norm, r.bool_or("moe_use_logits_norm", false));
  MOEPP_ASSIGN_OR_RETURN(double norm_std, r.number_or("moe_gate_norm_std", 1.0));
  MOEPP_ASSIGN_OR_RETURN(bool no_mul_topk, r.bool_or("moe_feature_no_mul_topk", false));
  MOEPP_ASSIGN_OR_RETURN(bool mixtral_gating, r.bool_or("moe_use_mixtral_gating", false));
  if (norm_std <= 0) return r.error("moe_gate_norm_std", "a positive number");

  MoeLayerSpec spec;
  for (int64_t e = 0; e < n_experts; ++e) {
    ExpertKind kind = ExpertKind::kFfn;
    if (e >= n_ffn) kind = ExpertKind::kConstant;
    if (e >= n_ffn + n_const) kind = ExpertKind::kCopy;
    if (e >= n_ffn + n_const + n_copy) kind = ExpertKind::kZero;
    spec.kinds.push_back(kind);
    spec.ffn_width.push_back(kind == ExpertKind::kFfn ? d_expert : 0);
  }
  RouterSpec& router = spec.router;
  router.network = two_layer_gate ? RouterNetwork::kMlpTanh : RouterNetwork::kLinear;
  router.hidden = two_layer_gate ? 8 * n_experts : 0;
  router.compute_in_f32 = true;
  router.gating_residual = true;
  router.logit_std_norm = logits_norm;
  router.logit_norm_std = static_cast<float>(norm_std);
  router.scoring = mixtral_gating ? RouterScoring::kTopKThenSoftmax : RouterScoring::kSoftmaxThenTopK;
  router.renormalize = true;
  router.zero_expert_gets_no_weight = !mixtral_gating;
  router.rounding = WeightRounding::kNone;
  router.top_k = static_cast<int>(top_k);
  spec.input_scale = (no_mul_topk || mixtral_gating) ? 1.0f : static_cast<float>(top_k);
  c->layers.assign(static_cast<size_t>(c->n_layers), spec);
  return Status::Ok();
}

Status load_moepp_layer(const ModelConfig& c, int64_t l, WeightLoader& loader, MoeLayerWeights* w) {
  const MoeLayerSpec& spec = c.layers[l];
  const std::string p = layer_prefix(l);
  const int64_t n = spec.n_experts();
  if (spec.router.network == RouterNetwork::kLinear) {
    MOEPP_ASSIGN_OR_RETURN(w->router.w1, loader.matrix(p + "gate.wg.weight", n, c.d_model));
  } else {
    MOEPP_ASSIGN_OR_RETURN(w->router.w1, loader.matrix(p + "gate.wg.0.weight", spec.router.hidden, c.d_model));
    MOEPP_ASSIGN_OR_RETURN(w->router.w2, loader.matrix(p + "gate.wg.2.weight", n, spec.router.hidden));
  }
  // Layer 0's gate_map is in the checkpoint but never used (it has no previous logits).
  MOEPP_ASSIGN_OR_RETURN(w->router.gate_map, loader.matrix(p + "gate.gate_map.weight", n, n));
  w->experts.resize(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) {
    const std::string ep = p + "experts.experts." + std::to_string(e) + ".";
    ExpertWeights& ew = w->experts[e];
    if (spec.kinds[e] == ExpertKind::kFfn) {
      MOEPP_RETURN_IF_ERROR(load_ffn_expert(loader, ep + "up_proj.weight", "", ep + "down_proj.weight",
                                            c.d_model, spec.ffn_width[e], &ew));
    } else if (spec.kinds[e] == ExpertKind::kConstant) {
      MOEPP_ASSIGN_OR_RETURN(ew.constant_value, loader.vector(ep + "constant", c.d_model));
      MOEPP_ASSIGN_OR_RETURN(ew.constant_gate, loader.matrix(ep + "wg.weight", 2, c.d_model));
    }
  }
  return Status::Ok();
}

void ignore_moepp(WeightLoader& loader) { loader.ignore_suffix(".rotary_emb.inv_freq"); }

}  // namespace

const FamilyDef kMoePPFamily = {
    "MoE++", Family::kMoePP,
    "SkyworkAI/MoE-plus-plus MoE++/modeling_moe_plus_plus.py (MoeForCausalLM)",
    parse_moepp, load_moepp_layer, ignore_moepp};

}  // namespace moepp
