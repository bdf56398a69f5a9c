// Parameter layout, initialisation and copying from a loaded Model.
#include "train/train_params.h"

#include <cstring>

namespace moepp {

Status check_trainable(const ModelConfig& c) {
  if (c.n_layers <= 0 || c.d_model <= 0 || c.vocab_size <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.head_dim <= 0 || c.head_dim % 2 != 0)
    return Status::Error(str_format("train: model shape: expected positive layers, widths, heads and an even head_dim, "
                                    "got n_layers %lld, d_model %lld, vocab %lld, heads %lld/%lld, head_dim %lld",
                                    (long long)c.n_layers, (long long)c.d_model, (long long)c.vocab_size,
                                    (long long)c.n_heads, (long long)c.n_kv_heads, (long long)c.head_dim));
  if (c.n_heads % c.n_kv_heads != 0)
    return Status::Error(str_format("train: n_heads %lld is not a multiple of n_kv_heads %lld",
                                    (long long)c.n_heads, (long long)c.n_kv_heads));
  if (static_cast<int64_t>(c.layers.size()) != c.n_layers)
    return Status::Error("train: the config has " + std::to_string(c.layers.size()) + " MoE layer specs for " +
                         std::to_string(c.n_layers) + " layers");
  for (size_t l = 0; l < c.layers.size(); ++l) {
    const MoeLayerSpec& s = c.layers[l];
    const RouterSpec& r = s.router;
    const std::string where = "train: layer " + std::to_string(l) + ": ";
    if (s.n_experts() < 1 || static_cast<int64_t>(s.ffn_width.size()) != s.n_experts())
      return Status::Error(where + "expected at least one expert with a width entry each");
    if (r.top_k < 1 || r.top_k > s.n_experts())
      return Status::Error(where + str_format("top_k %d, expected 1..%lld", r.top_k, (long long)s.n_experts()));
    if (r.scoring == RouterScoring::kTopKRaw || !r.multiply_scores)
      return Status::Error(where + "router scoring without softmax weights (LLaMA-MoE gate_use_softmax=false or "
                                   "multiply_gate_scores=false) is not supported for training");
    if (!(r.scale > 0)) return Status::Error(where + "router scale must be positive");
    if (r.network == RouterNetwork::kMlpTanh && r.hidden <= 0)
      return Status::Error(where + "MLP router with hidden width <= 0");
    if (r.logit_std_norm && s.n_experts() < 2)
      return Status::Error(where + "logit std normalisation needs at least 2 experts");
    if (r.logit_std_norm && !(r.logit_norm_std > 0))
      return Status::Error(where + "logit_norm_std must be positive");
    for (int64_t e = 0; e < s.n_experts(); ++e)
      if (s.kinds[e] == ExpertKind::kFfn && s.ffn_width[e] <= 0)
        return Status::Error(where + str_format("FFN expert %lld has width %lld", (long long)e, (long long)s.ffn_width[e]));
    if (l > 0 && c.layers[l].n_experts() != c.layers[l - 1].n_experts() && r.gating_residual)
      return Status::Error(where + "gating residual needs the same expert count as the previous layer");
  }
  return Status::Ok();
}

ParamRef TrainParams::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  ParamRef r;
  r.offset = laid_out_;
  r.rows = shape.size() == 2 ? shape[0] : 1;
  r.cols = shape.back();
  laid_out_ += r.size();
  tensors_.push_back({name, std::move(shape), r, decay});
  return r;
}

Result<TrainParams> TrainParams::layout(const ModelConfig& c) {
  MOEPP_RETURN_IF_ERROR(check_trainable(c));
  TrainParams p;
  p.config_ = c;
  const int64_t d = c.d_model;
  // Norm weights and the embedding are not decayed; every other matrix is.
  p.embed = p.add("model.embed_tokens.weight", {c.vocab_size, d}, false);
  p.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const MoeLayerSpec& s = c.layers[l];
    LayerParamRefs& L = p.layers[l];
    L.input_norm = p.add(pre + "input_layernorm.weight", {d}, false);
    L.post_norm = p.add(pre + "post_attention_layernorm.weight", {d}, false);
    L.q = p.add(pre + "self_attn.q_proj.weight", {c.n_heads * c.head_dim, d}, true);
    L.k = p.add(pre + "self_attn.k_proj.weight", {c.n_kv_heads * c.head_dim, d}, true);
    L.v = p.add(pre + "self_attn.v_proj.weight", {c.n_kv_heads * c.head_dim, d}, true);
    L.o = p.add(pre + "self_attn.o_proj.weight", {d, c.n_heads * c.head_dim}, true);
    const std::string g = pre + "mlp.moe.gate.";
    const int64_t n = s.n_experts();
    if (s.router.network == RouterNetwork::kLinear) {
      L.router_w1 = p.add(g + "wg.weight", {n, d}, true);
    } else {
      L.router_w1 = p.add(g + "wg.0.weight", {s.router.hidden, d}, true);
      L.router_w2 = p.add(g + "wg.2.weight", {n, s.router.hidden}, true);
    }
    if (s.router.gating_residual) L.gate_map = p.add(g + "gate_map.weight", {n, n}, true);
    L.experts.resize(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) {
      const std::string ep = pre + "mlp.moe.experts.experts." + std::to_string(e) + ".";
      if (s.kinds[e] == ExpertKind::kFfn) {
        L.experts[e].gate_up = p.add(ep + "up_proj.weight", {2 * s.ffn_width[e], d}, true);
        L.experts[e].down = p.add(ep + "down_proj.weight", {d, s.ffn_width[e]}, true);
      } else if (s.kinds[e] == ExpertKind::kConstant) {
        L.experts[e].constant_value = p.add(ep + "constant", {d}, false);
        L.experts[e].constant_gate = p.add(ep + "wg.weight", {2, d}, true);
      }
    }
  }
  p.final_norm = p.add("model.norm.weight", {d}, false);
  p.lm_head = c.tie_word_embeddings ? p.embed : p.add("lm_head.weight", {c.vocab_size, d}, true);
  return p;
}

const ParamTensor* TrainParams::find(const std::string& name) const {
  for (const ParamTensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Status TrainParams::for_each_model_weight(const Model& model, const TrainParams& layout, const WeightVisitor& fn) {
  auto visit = [&](const Weight& w, const ParamRef& r, const std::string& what) -> Status {
    if (!r.valid()) return Status::Ok();
    if (w.empty()) return Status::Error("model has no weight for " + what);
    if (w.rows != r.rows || w.cols != r.cols)
      return Status::Error(str_format("%s: shape [%lld, %lld], expected [%lld, %lld]", what.c_str(), (long long)w.rows,
                                      (long long)w.cols, (long long)r.rows, (long long)r.cols));
    return fn(w, r, what);
  };
  const ModelWeights& w = model.weights();
  const ModelConfig& c = model.config();
  MOEPP_RETURN_IF_ERROR(visit(w.embed, layout.embed, "embedding"));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const LayerParamRefs& L = layout.layers[l];
    const std::string where = "layer " + std::to_string(l) + " ";
    MOEPP_RETURN_IF_ERROR(visit(lw.input_norm, L.input_norm, where + "input norm"));
    MOEPP_RETURN_IF_ERROR(visit(lw.post_norm, L.post_norm, where + "post norm"));
    MOEPP_RETURN_IF_ERROR(visit(lw.attention.q, L.q, where + "q_proj"));
    MOEPP_RETURN_IF_ERROR(visit(lw.attention.k, L.k, where + "k_proj"));
    MOEPP_RETURN_IF_ERROR(visit(lw.attention.v, L.v, where + "v_proj"));
    MOEPP_RETURN_IF_ERROR(visit(lw.attention.o, L.o, where + "o_proj"));
    MOEPP_RETURN_IF_ERROR(visit(lw.moe.router.w1, L.router_w1, where + "router"));
    MOEPP_RETURN_IF_ERROR(visit(lw.moe.router.w2, L.router_w2, where + "router layer 2"));
    MOEPP_RETURN_IF_ERROR(visit(lw.moe.router.gate_map, L.gate_map, where + "gate_map"));
    for (size_t e = 0; e < L.experts.size(); ++e) {
      const ExpertWeights& ew = lw.moe.experts[e];
      const std::string we = where + "expert " + std::to_string(e) + " ";
      MOEPP_RETURN_IF_ERROR(visit(ew.gate_up, L.experts[e].gate_up, we + "gate_up"));
      MOEPP_RETURN_IF_ERROR(visit(ew.down, L.experts[e].down, we + "down"));
      MOEPP_RETURN_IF_ERROR(visit(ew.constant_gate, L.experts[e].constant_gate, we + "constant gate"));
      MOEPP_RETURN_IF_ERROR(visit(ew.constant_value, L.experts[e].constant_value, we + "constant value"));
    }
  }
  MOEPP_RETURN_IF_ERROR(visit(w.final_norm, layout.final_norm, "final norm"));
  if (!c.tie_word_embeddings) MOEPP_RETURN_IF_ERROR(visit(w.lm_head, layout.lm_head, "lm_head"));
  return Status::Ok();
}

Result<TrainParams> TrainParams::from_model(const Model& model) {
  MOEPP_ASSIGN_OR_RETURN(TrainParams p, layout(model.config()));
  // One allocation of the exact size: growing tensor by tensor held up to three times a large
  // model's values at once (`moepp quantize` of a 289M-parameter model peaked at 3.6 GB).
  p.values_.assign(static_cast<size_t>(p.laid_out_), 0.0f);
  Status s = for_each_model_weight(model, p, [&](const Weight& w, const ParamRef& r, const std::string& what) -> Status {
    if (w.quant != WeightQuant::kNone)
      return Status::Error(what + " is quantised (" + weight_format_name(w) +
                           "); load the model without quantisation to train it");
    float* dst = p.at(r);
    if (w.dtype == DType::kF32 && !w.interleaved) {
      std::memcpy(dst, w.f32(), sizeof(float) * static_cast<size_t>(r.size()));
    } else {
      for (int64_t i = 0; i < r.rows; ++i)
        for (int64_t j = 0; j < r.cols; ++j) dst[i * r.cols + j] = w.at(i, j);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.with_context("train");
  return p;
}

Result<TrainParams> TrainParams::random(const ModelConfig& config, uint64_t seed) {
  MOEPP_RETURN_IF_ERROR(check_trainable(config));
  MOEPP_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::random(config, seed, LoadOptions{}));
  return from_model(*model);
}

}  // namespace moepp
