// Shapes as data. MoE++ rows follow the paper's Table 2 with the released 7B config's router
// (one bias-free Linear, logit std normalisation with λ = 1, no ×top_k input scaling, gating
// residual, f32 router); expert table order as the reference: FFN, constant, copy, zero.
// Vanilla twins drop the zero-computation experts and the gating residual (the paper's
// baseline is a plain top-2 softmax router) and keep everything else.
#include "bench/shapes.h"

#include <algorithm>

namespace moepp {
namespace {

struct ShapeDef {
  const char* name;
  bool moepp;       // MoE++ (zero-computation experts) or vanilla
  int64_t n_layers, d_model, d_expert, n_heads, n_kv_heads, head_dim, vocab;
  int64_t n_ffn, n_zero, n_copy, n_const;
};

// Paper shapes: vocab 65536 (the paper's LLaMA2-derived tokenizer, as in the released 7B config).
constexpr ShapeDef kShapes[] = {
    {"moepp-0.6b", true, 12, 768, 2048, 12, 12, 64, 65536, 8, 1, 1, 2},
    {"moepp-1b", true, 12, 768, 2048, 12, 12, 64, 65536, 16, 1, 1, 2},
    {"moepp-2b", true, 12, 768, 2048, 12, 12, 64, 65536, 32, 1, 1, 6},
    {"moepp-7b", true, 24, 1536, 4096, 16, 16, 96, 65536, 16, 1, 1, 2},
    {"moe-0.6b", false, 12, 768, 2048, 12, 12, 64, 65536, 8, 0, 0, 0},
    {"moe-1b", false, 12, 768, 2048, 12, 12, 64, 65536, 16, 0, 0, 0},
    {"moe-2b", false, 12, 768, 2048, 12, 12, 64, 65536, 32, 0, 0, 0},
    {"moe-7b", false, 24, 1536, 4096, 16, 16, 96, 65536, 16, 0, 0, 0},
    // Mixtral-style: hidden 1024, 24 layers, ffn 2816, 16 heads x 64, 4 KV heads, 8 experts top-2.
    {"mixtral-1.8b", false, 24, 1024, 2816, 16, 4, 64, 32000, 8, 0, 0, 0},
};

const ShapeDef* find_shape(const std::string& name) {
  for (const ShapeDef& s : kShapes)
    if (name == s.name) return &s;
  return nullptr;
}

std::string known_shapes() {
  std::string s;
  for (const std::string& n : shape_names()) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

}  // namespace

const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ShapeDef& s : kShapes) v.push_back(s.name);
    return v;
  }();
  return names;
}

Result<ModelConfig> shape_config(const std::string& name, int64_t max_layers) {
  const ShapeDef* s = find_shape(name);
  if (s == nullptr) return Status::Error("--model-shape: unknown shape '" + name + "', expected one of " + known_shapes());
  if (max_layers < 0) return Status::Error("--layers: expected a positive number of layers, got " + std::to_string(max_layers));
  const bool mixtral = std::string(name) == "mixtral-1.8b";
  ModelConfig c;
  c.family = s->moepp ? Family::kMoePP : Family::kMixtral;
  c.model_type = s->moepp ? "MoE++" : (mixtral ? "mixtral" : "moe");
  c.vocab_size = s->vocab;
  c.d_model = s->d_model;
  c.n_layers = max_layers > 0 ? std::min(max_layers, s->n_layers) : s->n_layers;
  c.n_heads = s->n_heads;
  c.n_kv_heads = s->n_kv_heads;
  c.head_dim = s->head_dim;
  c.max_position_embeddings = mixtral ? 32768 : 2048;
  c.rope_theta = mixtral ? 1e6 : 1e4;
  c.rms_norm_eps = mixtral ? 1e-5f : 1e-6f;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = "bfloat16";

  MoeLayerSpec spec;
  auto add = [&](ExpertKind kind, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      spec.kinds.push_back(kind);
      spec.ffn_width.push_back(kind == ExpertKind::kFfn ? s->d_expert : 0);
    }
  };
  add(ExpertKind::kFfn, s->n_ffn);
  add(ExpertKind::kConstant, s->n_const);
  add(ExpertKind::kCopy, s->n_copy);
  add(ExpertKind::kZero, s->n_zero);
  RouterSpec& r = spec.router;
  r.network = RouterNetwork::kLinear;
  r.scoring = RouterScoring::kSoftmaxThenTopK;
  r.renormalize = true;
  r.top_k = 2;
  if (s->moepp) {
    r.compute_in_f32 = true;
    r.gating_residual = true;
    r.logit_std_norm = true;
    r.logit_norm_std = 1.0f;
    r.zero_expert_gets_no_weight = true;
    r.rounding = WeightRounding::kNone;
  } else if (mixtral) {
    r.rounding = WeightRounding::kToActivation;
  } else {
    r.compute_in_f32 = true;  // the paper's baseline shares the MoE++ code base (f32 router)
    r.rounding = WeightRounding::kNone;
  }
  spec.input_scale = 1.0f;
  c.layers.assign(static_cast<size_t>(c.n_layers), spec);
  return c;
}

Result<std::string> vanilla_twin(const std::string& name) {
  if (name.rfind("moepp-", 0) == 0 && find_shape(name) != nullptr) return "moe-" + name.substr(6);
  return Status::Error("--compare-vanilla: '" + name + "' has no vanilla twin, expected an MoE++ shape (moepp-0.6b, moepp-1b, moepp-2b, moepp-7b)");
}

ShapeParams shape_params(const ModelConfig& c) {
  const int64_t d = c.d_model;
  // Same convention as Model::param_counts(): embedding, final norm and lm_head count as dense.
  const int64_t dense = c.vocab_size * d * (c.tie_word_embeddings ? 1 : 2) + d;
  ShapeParams p{dense, dense};
  for (const MoeLayerSpec& spec : c.layers) {
    const int64_t n = spec.n_experts();
    int64_t layer = 2 * d + 2 * c.n_heads * c.head_dim * d + 2 * c.n_kv_heads * c.head_dim * d;
    layer += spec.router.network == RouterNetwork::kLinear ? n * d : spec.router.hidden * (d + n);
    if (spec.router.gating_residual) layer += n * n;
    std::vector<int64_t> experts;
    for (int64_t e = 0; e < n; ++e) {
      if (spec.kinds[e] == ExpertKind::kFfn) experts.push_back(3 * d * spec.ffn_width[e]);
      else if (spec.kinds[e] == ExpertKind::kConstant) experts.push_back(3 * d);
      else experts.push_back(0);
    }
    int64_t all = 0;
    for (int64_t v : experts) all += v;
    std::sort(experts.rbegin(), experts.rend());
    int64_t top = 0;
    for (int j = 0; j < spec.router.top_k && j < static_cast<int>(experts.size()); ++j) top += experts[j];
    p.total += layer + all;
    p.active_max += layer + top;
  }
  return p;
}

}  // namespace moepp
