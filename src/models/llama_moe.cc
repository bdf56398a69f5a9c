// LLaMA-MoE v1 and LLaMA-8x265M-MoE (model_type "llama_moe"). Source of truth:
// pjlab-sys4nlp/llama-moe smoe/models/llama_moe/modeling_llama_moe_hf.py (LlamaMoEForCausalLM)
// with TopKBalancedNoisyGate + UniversalCalculator, the only pair the Hub code implements.
// Router: top-k on the gate logits, softmax over the k (or raw logits), times
// score_scale_factor; expert tensors are ParameterList entries with no ".weight" suffix.
#include "models/family.h"

namespace moepp {
namespace {

Status parse_llama_moe(const ConfigReader& r, ModelConfig* c) {
  MOEPP_ASSIGN_OR_RETURN(int64_t n_experts, r.positive_int("num_experts"));
  if (n_experts > kMaxExperts) return r.error("num_experts", "at most " + std::to_string(kMaxExperts));
  MOEPP_ASSIGN_OR_RETURN(int64_t top_k, r.positive_int("num_selects"));
  if (top_k > n_experts) return r.error("num_selects", "at most num_experts (" + std::to_string(n_experts) + ")");
  MOEPP_ASSIGN_OR_RETURN(std::string gate_type, r.string_or("gate_type", "TopKBalancedNoisyGate"));
  if (gate_type != "TopKBalancedNoisyGate") return r.error("gate_type", "\"TopKBalancedNoisyGate\" (the only gate of the reference code)");
  MOEPP_ASSIGN_OR_RETURN(std::string calculator, r.string_or("calculator_type", "UniversalCalculator"));
  if (calculator != "UniversalCalculator") return r.error("calculator_type", "\"UniversalCalculator\" (the only calculator of the reference code)");
  MOEPP_ASSIGN_OR_RETURN(std::string network, r.string_or("gate_network", "mlp"));
  if (network != "mlp" && network != "linear") return r.error("gate_network", "\"mlp\" or \"linear\"");
  MOEPP_ASSIGN_OR_RETURN(bool use_softmax, r.bool_or("gate_use_softmax", true));
  MOEPP_ASSIGN_OR_RETURN(bool multiply, r.bool_or("multiply_gate_scores", true));
  MOEPP_ASSIGN_OR_RETURN(int64_t intermediate, r.int_or("intermediate_size", 0));
  // The reference's rotary embedding never reads rope_theta: it always uses base 10000
  // (checkpoint-formats.md §3.4), so a config value is ignored here too.
  c->rope_theta = 10000.0;

  // score_scale_factor: a number, or one number per layer.
  std::vector<double> scales(static_cast<size_t>(c->n_layers), 1.0);
  if (r.has("score_scale_factor")) {
    const auto& s = r.raw("score_scale_factor");
    if (s.is_number()) {
      scales.assign(scales.size(), s.get<double>());
    } else if (s.is_array() && static_cast<int64_t>(s.size()) == c->n_layers) {
      for (size_t l = 0; l < s.size(); ++l) {
        if (!s[l].is_number()) return r.error("score_scale_factor", "a number or a list of numbers");
        scales[l] = s[l].get<double>();
      }
    } else {
      return r.error("score_scale_factor", "a number or a list of num_hidden_layers numbers");
    }
  }

  c->layers.clear();
  for (int64_t l = 0; l < c->n_layers; ++l) {
    MoeLayerSpec spec;
    spec.kinds.assign(static_cast<size_t>(n_experts), ExpertKind::kFfn);
    if (r.has("size_experts")) {  // [n_layers][n_experts] widths
      const auto& se = r.raw("size_experts");
      if (!se.is_array() || static_cast<int64_t>(se.size()) != c->n_layers || !se[l].is_array() ||
          static_cast<int64_t>(se[l].size()) != n_experts)
        return r.error("size_experts", "null or num_hidden_layers lists of num_experts positive integers");
      for (const auto& v : se[l]) {
        if (!v.is_number_integer() || v.get<int64_t>() <= 0)
          return r.error("size_experts", "null or num_hidden_layers lists of num_experts positive integers");
        spec.ffn_width.push_back(v.get<int64_t>());
      }
    } else {
      if (intermediate <= 0 || intermediate % n_experts != 0)
        return r.error("intermediate_size", "a positive multiple of num_experts when size_experts is null");
      spec.ffn_width.assign(static_cast<size_t>(n_experts), intermediate / n_experts);
    }
    RouterSpec& router = spec.router;
    router.network = network == "mlp" ? RouterNetwork::kMlpTanh : RouterNetwork::kLinear;
    router.hidden = network == "mlp" ? n_experts : 0;
    router.scoring = use_softmax ? RouterScoring::kTopKThenSoftmax : RouterScoring::kTopKRaw;
    router.multiply_scores = multiply;
    router.scale = static_cast<float>(scales[l]);
    router.rounding = WeightRounding::kToActivation;
    router.top_k = static_cast<int>(top_k);
    c->layers.push_back(std::move(spec));
  }
  return Status::Ok();
}

Status load_llama_moe_layer(const ModelConfig& c, int64_t l, WeightLoader& loader, MoeLayerWeights* w) {
  const MoeLayerSpec& spec = c.layers[l];
  const std::string p = "model.layers." + std::to_string(l) + ".mlp.";
  const int64_t n = spec.n_experts();
  if (spec.router.network == RouterNetwork::kLinear) {
    MOEPP_ASSIGN_OR_RETURN(w->router.w1, loader.matrix(p + "gate.gate_network.weight", n, c.d_model));
  } else {
    MOEPP_ASSIGN_OR_RETURN(w->router.w1, loader.matrix(p + "gate.gate_network.0.weight", n, c.d_model));
    MOEPP_ASSIGN_OR_RETURN(w->router.w2, loader.matrix(p + "gate.gate_network.2.weight", n, n));
  }
  w->experts.resize(static_cast<size_t>(n));
  const std::string ep = p + "calculator.experts.";
  for (int64_t e = 0; e < n; ++e) {
    const std::string id = std::to_string(e);
    MOEPP_RETURN_IF_ERROR(load_ffn_expert(loader, ep + "weight_gate." + id, ep + "weight_up." + id,
                                          ep + "weight_down." + id, c.d_model, spec.ffn_width[e], &w->experts[e]));
  }
  return Status::Ok();
}

void ignore_llama_moe(WeightLoader& loader) {
  loader.ignore_suffix(".rotary_emb.inv_freq");     // persistent RoPE buffer in old checkpoints
  loader.ignore_suffix(".gate.weight_noise.weight");  // training-only noise projection
}

}  // namespace

const FamilyDef kLlamaMoeFamily = {
    "llama_moe", Family::kLlamaMoe,
    "pjlab-sys4nlp/llama-moe smoe/models/llama_moe/modeling_llama_moe_hf.py (LlamaMoEForCausalLM)",
    parse_llama_moe, load_llama_moe_layer, ignore_llama_moe};

}  // namespace moepp
