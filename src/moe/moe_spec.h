// What an MoE layer is, as data: its typed expert table and its router's knobs. Every family's
// config is translated into this once at load; forward code reads only these structs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/weight.h"

namespace moepp {

// Zero, copy and constant experts are "zero-computation": evaluated in the combine step with
// no GEMM and no weight bytes beyond the constant expert's two vectors.
enum class ExpertKind { kFfn, kZero, kCopy, kConstant };
const char* expert_kind_name(ExpertKind kind);

enum class RouterNetwork {
  kLinear,   // logits = W x
  kMlpTanh,  // logits = W2 tanh(W1 x)  (MoE++ moe_2layer_gate, LLaMA-MoE gate_network "mlp")
};

enum class RouterScoring {
  kSoftmaxThenTopK,  // p = softmax(all logits); top-k of p; optional renormalise (Mixtral, MoE++)
  kTopKThenSoftmax,  // top-k of logits; softmax over the k (LLaMA-MoE, MoE++ mixtral gating)
  kTopKRaw,          // top-k of logits; the raw logits are the weights (gate_use_softmax=false)
};

// Where the reference rounds routing weights before they multiply bf16 expert outputs.
enum class WeightRounding {
  kNone,                // f32 weight times bf16 output, rounded once (MoE++)
  kToActivation,        // round(round(w) * scale) in the activation dtype (Mixtral, LLaMA-MoE)
};

// Upper bound on experts per layer, checked when a config is read.
constexpr int64_t kMaxExperts = 1024;

struct RouterSpec {
  RouterNetwork network = RouterNetwork::kLinear;
  int64_t hidden = 0;               // width of the MLP router's hidden layer
  bool compute_in_f32 = false;      // MoE++ forces its router to f32
  bool gating_residual = false;     // MoE++: logits += gate_map(previous layer's raw logits)
  bool logit_std_norm = false;      // MoE++: logits / (std(logits) / logit_norm_std)
  float logit_norm_std = 1.0f;
  RouterScoring scoring = RouterScoring::kSoftmaxThenTopK;
  bool renormalize = true;          // kSoftmaxThenTopK: weights / sum(weights)
  bool zero_expert_gets_no_weight = false;  // MoE++: zero expert's weight set to 0 before renorm
  bool multiply_scores = true;      // false: experts summed with weight 1 (LLaMA-MoE option)
  float scale = 1.0f;               // LLaMA-MoE score_scale_factor
  WeightRounding rounding = WeightRounding::kNone;
  int top_k = 2;
  bool zero_computation_only = false;  // drafts: top-k among the zero-computation experts only
};

struct MoeLayerSpec {
  std::vector<ExpertKind> kinds;     // [n_experts]
  std::vector<int64_t> ffn_width;    // [n_experts]: d_expert of FFN experts, 0 for the others
  RouterSpec router;
  float input_scale = 1.0f;          // MoE++ without moe_feature_no_mul_topk: inputs x top_k

  int64_t n_experts() const { return static_cast<int64_t>(kinds.size()); }
  int64_t count(ExpertKind kind) const;
};

struct ExpertWeights {
  Weight gate_up;         // FFN: [2*d_expert, d_model], gate (SiLU) rows first, then up rows
  Weight down;            // FFN: [d_model, d_expert]
  Weight constant_gate;   // constant: [2, d_model]
  Weight constant_value;  // constant: [1, d_model]
};

struct RouterWeights {
  Weight w1;        // linear: [n_experts, d_model]; MLP: [hidden, d_model]
  Weight w2;        // MLP only: [n_experts, hidden]
  Weight gate_map;  // gating residual: [n_experts, n_experts]
};

struct MoeLayerWeights {
  RouterWeights router;
  std::vector<ExpertWeights> experts;  // [n_experts], indexed by expert id
};

}  // namespace moepp
