// fp32 training parameters of a decoder-only MoE / MoE++ model, in one flat buffer so that the
// optimiser, gradient clipping and checkpoints see a single array; every tensor keeps its
// Hugging Face MoE++ name (docs/moepp-spec.md §3) for gradient dumps and exported models.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "models/model.h"
#include "models/model_config.h"

namespace moepp {

// A [rows, cols] slice of the flat parameter (or gradient) buffer; vectors are [1, n].
struct ParamRef {
  int64_t offset = -1;
  int64_t rows = 0, cols = 0;
  bool valid() const { return offset >= 0; }
  int64_t size() const { return rows * cols; }
};

struct ExpertParamRefs {
  ParamRef gate_up;         // FFN: [2*d_expert, d_model], SiLU-gate rows first (HF up_proj)
  ParamRef down;            // FFN: [d_model, d_expert]
  ParamRef constant_gate;   // constant: [2, d_model] (HF wg)
  ParamRef constant_value;  // constant: [1, d_model] (HF constant)
};

struct LayerParamRefs {
  ParamRef input_norm, post_norm;  // [1, d_model]
  ParamRef q, k, v, o;             // [n_heads*hd, d], [n_kv*hd, d] x2, [d, n_heads*hd]
  ParamRef router_w1;              // linear: [n_experts, d]; MLP: [hidden, d]
  ParamRef router_w2;              // MLP only: [n_experts, hidden]
  ParamRef gate_map;               // gating residual only: [n_experts, n_experts]
  std::vector<ExpertParamRefs> experts;  // [n_experts]
};

struct ParamTensor {
  std::string name;            // HF MoE++ name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // as in the HF checkpoint: 1-D for norms and constant vectors
  ParamRef ref;
  bool decay = false;          // AdamW weight decay applies (2-D matrices except the embedding)
};

class TrainParams {
 public:
  // Copies the weights of a loaded (f32 or bf16, not quantised) model.
  static Result<TrainParams> from_model(const Model& model);
  // The tensors' names, shapes and slices for `config`, without values (size() is 0): what an
  // export needs to name a model's weights (for_each_model_weight). Checks the config is trainable.
  static Result<TrainParams> layout(const ModelConfig& config);
  // Calls fn(weight, its slice, what) for every weight of `model` that `layout` has a slice for,
  // in the layout's order, after checking each is there with the slice's shape; stops at the
  // first error.
  using WeightVisitor = std::function<Status(const Weight& w, const ParamRef& ref, const std::string& what)>;
  static Status for_each_model_weight(const Model& model, const TrainParams& layout, const WeightVisitor& fn);
  // Fresh weights for `config`, initialised as Model::random (N(0, 0.02) matrices, unit norms,
  // routers N(0, 1/sqrt(fan_in))).
  static Result<TrainParams> random(const ModelConfig& config, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* find(const std::string& name) const;
  int64_t size() const { return static_cast<int64_t>(values_.size()); }
  std::vector<float>& values() { return values_; }
  const std::vector<float>& values() const { return values_; }
  float* at(const ParamRef& r) { return values_.data() + r.offset; }
  const float* at(const ParamRef& r) const { return values_.data() + r.offset; }

  ParamRef embed;       // [vocab_size, d_model]
  ParamRef final_norm;  // [1, d_model]
  ParamRef lm_head;     // [vocab_size, d_model]; the same slice as embed when tied
  std::vector<LayerParamRefs> layers;

 private:
  ParamRef add(const std::string& name, std::vector<int64_t> shape, bool decay);

  ModelConfig config_;
  std::vector<ParamTensor> tensors_;
  std::vector<float> values_;
  int64_t laid_out_ = 0;  // values add() has placed; from_model allocates them at once
};

// Checks that `config` describes a model this trainer can run (shapes, router options).
Status check_trainable(const ModelConfig& config);

}  // namespace moepp
