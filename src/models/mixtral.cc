// Mixtral (model_type "mixtral"). Source of truth: huggingface/transformers
// src/transformers/models/mixtral/modeling_mixtral.py (MixtralForCausalLM), v4 tensor names.
// Router: softmax over all experts in f32, top-k, always renormalised, weights rounded to the
// activation dtype. Experts: w1 = gate, w3 = up, w2 = down.
#include "models/family.h"

namespace moepp {
namespace {

Status parse_mixtral(const ConfigReader& r, ModelConfig* c) {
  int64_t n_experts = 0;
  if (r.has("num_local_experts")) {
    MOEPP_ASSIGN_OR_RETURN(n_experts, r.positive_int("num_local_experts"));
  } else {
    MOEPP_ASSIGN_OR_RETURN(n_experts, r.positive_int("num_experts"));
  }
  if (n_experts > kMaxExperts) return r.error("num_local_experts", "at most " + std::to_string(kMaxExperts));
  MOEPP_ASSIGN_OR_RETURN(int64_t top_k, r.positive_int("num_experts_per_tok"));
  if (top_k > n_experts) return r.error("num_experts_per_tok", "at most num_local_experts (" + std::to_string(n_experts) + ")");
  MOEPP_ASSIGN_OR_RETURN(int64_t d_expert, r.positive_int("intermediate_size"));
  MoeLayerSpec spec;
  spec.kinds.assign(static_cast<size_t>(n_experts), ExpertKind::kFfn);
  spec.ffn_width.assign(static_cast<size_t>(n_experts), d_expert);
  spec.router.scoring = RouterScoring::kSoftmaxThenTopK;
  spec.router.renormalize = true;
  spec.router.rounding = WeightRounding::kToActivation;
  spec.router.top_k = static_cast<int>(top_k);
  c->layers.assign(static_cast<size_t>(c->n_layers), spec);
  return Status::Ok();
}

Status load_mixtral_layer(const ModelConfig& c, int64_t l, WeightLoader& loader, MoeLayerWeights* w) {
  const MoeLayerSpec& spec = c.layers[l];
  const std::string p = "model.layers." + std::to_string(l) + ".block_sparse_moe.";
  MOEPP_ASSIGN_OR_RETURN(w->router.w1, loader.matrix(p + "gate.weight", spec.n_experts(), c.d_model));
  w->experts.resize(static_cast<size_t>(spec.n_experts()));
  for (int64_t e = 0; e < spec.n_experts(); ++e) {
    const std::string ep = p + "experts." + std::to_string(e) + ".";
    MOEPP_RETURN_IF_ERROR(load_ffn_expert(loader, ep + "w1.weight", ep + "w3.weight", ep + "w2.weight",
                                          c.d_model, spec.ffn_width[e], &w->experts[e]));
  }
  return Status::Ok();
}

void ignore_mixtral(WeightLoader& loader) { loader.ignore_suffix(".rotary_emb.inv_freq"); }

}  // namespace

const FamilyDef kMixtralFamily = {
    "mixtral", Family::kMixtral,
    "huggingface/transformers models/mixtral/modeling_mixtral.py (MixtralForCausalLM)",
    parse_mixtral, load_mixtral_layer, ignore_mixtral};

}  // namespace moepp
