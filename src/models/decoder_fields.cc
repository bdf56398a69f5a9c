// config.json fields shared by every LLaMA-style decoder family (checkpoint-formats.md §1.2).
#include <algorithm>

#include "models/family.h"

namespace moepp {

Status parse_decoder_fields(const ConfigReader& r, ModelConfig* c) {
  MOEPP_ASSIGN_OR_RETURN(c->vocab_size, r.positive_int("vocab_size"));
  MOEPP_ASSIGN_OR_RETURN(c->d_model, r.positive_int("hidden_size"));
  MOEPP_ASSIGN_OR_RETURN(c->n_layers, r.positive_int("num_hidden_layers"));
  MOEPP_ASSIGN_OR_RETURN(c->n_heads, r.positive_int("num_attention_heads"));
  MOEPP_ASSIGN_OR_RETURN(c->n_kv_heads, r.int_or("num_key_value_heads", c->n_heads));
  if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0)
    return r.error("num_key_value_heads", "a positive divisor of num_attention_heads (" + std::to_string(c->n_heads) + ")");
  MOEPP_ASSIGN_OR_RETURN(c->head_dim, r.int_or("head_dim", c->d_model / c->n_heads));
  if (c->head_dim <= 0 || c->head_dim % 2 != 0)
    return r.error("head_dim", "a positive even number (hidden_size / num_attention_heads by default)");
  if (!r.has("head_dim") && c->d_model % c->n_heads != 0)
    return r.error("hidden_size", "a multiple of num_attention_heads (" + std::to_string(c->n_heads) + ")");
  MOEPP_ASSIGN_OR_RETURN(c->max_position_embeddings, r.int_or("max_position_embeddings", 4096));
  MOEPP_ASSIGN_OR_RETURN(c->sliding_window, r.int_or("sliding_window", 0));
  if (c->sliding_window < 0) return r.error("sliding_window", "null or a positive integer");

  // RoPE base: rope_theta (v4 configs) or rope_parameters.rope_theta (v5 configs).
  double theta = 10000.0;
  if (r.has("rope_parameters")) {
    const auto& rp = r.raw("rope_parameters");
    if (!rp.is_object()) return r.error("rope_parameters", "an object");
    if (rp.contains("rope_theta")) {
      if (!rp["rope_theta"].is_number()) return r.error("rope_parameters.rope_theta", "a number", rp["rope_theta"]);
      theta = rp["rope_theta"].get<double>();
    }
    const std::string type = rp.value("rope_type", std::string("default"));
    if (type != "default") return r.error("rope_parameters.rope_type", "\"default\" (RoPE scaling is not supported yet)", rp["rope_type"]);
  }
  MOEPP_ASSIGN_OR_RETURN(c->rope_theta, r.number_or("rope_theta", theta));
  if (c->rope_theta <= 0) return r.error("rope_theta", "a positive number");
  if (r.has("rope_scaling")) return r.error("rope_scaling", "null (RoPE scaling is not supported yet)");

  MOEPP_ASSIGN_OR_RETURN(double eps, r.number_or("rms_norm_eps", 1e-6));
  if (eps <= 0) return r.error("rms_norm_eps", "a positive number");
  c->rms_norm_eps = static_cast<float>(eps);
  MOEPP_ASSIGN_OR_RETURN(c->tie_word_embeddings, r.bool_or("tie_word_embeddings", false));
  MOEPP_ASSIGN_OR_RETURN(int64_t bos, r.int_or("bos_token_id", -1));
  c->bos_token_id = static_cast<int32_t>(bos);
  c->eos_token_ids.clear();
  if (r.has("eos_token_id")) {
    const auto& eos = r.raw("eos_token_id");
    if (eos.is_number_integer()) {
      c->eos_token_ids.push_back(eos.get<int32_t>());
    } else if (eos.is_array()) {
      for (const auto& e : eos) {
        if (!e.is_number_integer()) return r.error("eos_token_id", "an integer or a list of integers");
        c->eos_token_ids.push_back(e.get<int32_t>());
      }
    } else {
      return r.error("eos_token_id", "an integer or a list of integers");
    }
  }
  MOEPP_ASSIGN_OR_RETURN(std::string dtype, r.string_or("dtype", ""));
  MOEPP_ASSIGN_OR_RETURN(c->torch_dtype, r.string_or("torch_dtype", dtype));
  return Status::Ok();
}

Status load_ffn_expert(WeightLoader& loader, const std::string& gate, const std::string& up,
                       const std::string& down, int64_t d_model, int64_t d_expert, ExpertWeights* out) {
  if (up.empty()) {  // fused [gate; up] already (MoE++ up_proj)
    MOEPP_ASSIGN_OR_RETURN(out->gate_up, loader.expert_matrix(gate, 2 * d_expert, d_model));
  } else {
    MOEPP_ASSIGN_OR_RETURN(out->gate_up, loader.expert_stacked({gate, up}, {d_expert, d_expert}, d_model));
  }
  MOEPP_RETURN_IF_ERROR(loader.expert_matrix_loaded(&out->gate_up));
  MOEPP_ASSIGN_OR_RETURN(out->down, loader.expert_matrix(down, d_model, d_expert));
  return loader.expert_matrix_loaded(&out->down);
}

}  // namespace moepp
