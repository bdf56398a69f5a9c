// A loaded model: config, canonical weights, and the decoder forward pass over a batch.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/tensor_source.h"
#include "layers/batch.h"
#include "layers/kv_cache.h"
#include "models/model_config.h"
#include "models/model_weights.h"
#include "moe/routing.h"
#include "ops/precision.h"
#include "platform/thread_pool.h"

namespace moepp {

struct LoadOptions {
  ComputeDType dtype = ComputeDType::kF32;
  // Quantise at load: FFN experts, and the other large matrices (attention, lm_head). Norms,
  // routers, embeddings and constant experts keep the compute precision.
  WeightQuant expert_quant = WeightQuant::kNone;
  WeightQuant rest_quant = WeightQuant::kNone;
  // How make_cache() stores keys and values: unset, in the compute precision (f32, or bf16 for a
  // bf16 forward: the same numbers either way); q8 trades accuracy for about half the bytes.
  std::optional<KvStorage> kv_cache;
  // Threads that convert, quantise and interleave the weights while loading (the command's pool,
  // borrowed for the load only); none: the loading thread alone.
  ThreadPool* pool = nullptr;
  // Model::load checks the checkpoint's config, tensor names, shapes and dtypes and gives every
  // weight the shape and format a full load would, without reading, converting or allocating a
  // single weight (`moepp info` on a checkpoint of any size). Such a model has no numbers to run:
  // forward() refuses it.
  bool shapes_only = false;
  // Called as Model::load goes (at the start, after the embedding, each layer and the head) with
  // the bytes of the checkpoint's tensors loaded so far and in all; a command's progress bar.
  std::function<void(int64_t done_bytes, int64_t total_bytes)> progress;
};

// Hooks called during forward (tests, routing analysis, debugging): per layer output and
// routing plan. Default implementations do nothing.
class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  virtual void on_layer_output(int64_t layer, const Batch& batch, const float* h /*[n_tokens, d_model]*/) {}
  virtual void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) {}
  // The MoE layer's input (after post_attention_layernorm) and the previous layer's raw router
  // logits for the gating residual (nullptr on the first MoE layer or without one).
  virtual void on_moe_input(int64_t layer, const Batch& batch, const float* x /*[n_tokens, d_model]*/,
                            const float* prev_logits /*[n_tokens, n_experts] or nullptr*/) {}
};

struct ParamCounts {
  int64_t total = 0;
  int64_t active_max = 0;  // per token when every slot goes to the largest FFN experts
  int64_t active_min = 0;  // per token when the router picks the cheapest experts
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(const std::string& dir, const LoadOptions& options);
  // A model of the given shape with random weights (benchmarks, tests, training from scratch):
  // N(0, 0.02) matrices, norms 1, routers N(0, 1/sqrt(d_model)) so routing varies by token
  // (normals as tensor/random_fill.h draws them).
  static Result<std::unique_ptr<Model>> random(const ModelConfig& config, uint64_t seed, const LoadOptions& options);

  // The same weights routed to fewer experts per token (a self-draft for speculative decoding).
  // Shares this model's memory: it must not outlive it.
  std::unique_ptr<Model> with_top_k(int top_k) const;
  // The same weights with every router choosing among zero, copy and constant experts only:
  // attention and the cheap experts run, FFN experts never (MoE++'s cheapest self-draft).
  // Error when a MoE layer has fewer zero-computation experts than its top-k.
  Result<std::unique_ptr<Model>> with_zero_computation_only() const;

  const ModelConfig& config() const { return config_; }
  Precision precision() const { return precision_; }
  const ModelWeights& weights() const { return weights_; }
  ModelWeights& mutable_weights() { return weights_; }  // benchmarks and training edit weights
  const std::string& dir() const { return dir_; }
  const std::string& weight_format() const { return weight_format_; }
  std::vector<std::pair<std::string, int64_t>> checkpoint_dtypes() const { return checkpoint_dtypes_; }
  ParamCounts param_counts() const;
  size_t weight_bytes() const;
  // False for a model loaded with LoadOptions::shapes_only.
  bool has_weight_values() const { return has_weight_values_; }

  // A bf16 forward's keys and values are bf16 values, so its cache stores them as bf16.
  KvCache make_cache() const { return KvCache(config_.n_layers, config_.n_kv_heads, config_.head_dim, kv_storage_); }
  KvStorage kv_storage() const { return kv_storage_; }

  // Runs the batch through the model, appending its keys/values to the cache. logits (out):
  // [batch.n_outputs(), vocab_size] for the tokens marked in want_logits, in batch order.
  Status forward(ThreadPool& pool, const Batch& batch, KvCache& cache, std::vector<float>* logits,
                 ForwardObserver* observer = nullptr) const;

 private:
  Model() = default;
  std::unique_ptr<Model> clone_sharing_weights() const;
  Status check_batch(const Batch& batch, const KvCache& cache) const;
  // The large matrices (attention, experts, untied lm_head) quantised as the options ask and in
  // the row-interleaved layout the kernels stream fastest (tensor/weight.h), one matrix at a time,
  // each original released as soon as its copy exists (mapped pages given back, owned memory
  // freed): loading holds about one matrix more than the model. Per layer, so a caller can
  // prepare each layer as it is built; prepare_head does lm_head.
  Status prepare_layer(LayerWeights& lw, int64_t layer, const LoadOptions& options);
  Status prepare_head(const LoadOptions& options);
  // Sets precision_ and kv_storage_ from the options: error for a bf16 cache under an f32 forward.
  Status set_precision(const LoadOptions& options);

  std::string dir_;
  std::string weight_format_;
  ModelConfig config_;
  ModelWeights weights_;
  Precision precision_;
  KvStorage kv_storage_ = KvStorage::kF32;
  bool has_weight_values_ = true;
  std::vector<float> inv_freq_;  // [head_dim/2]
  std::unique_ptr<TensorSource> source_;  // keeps mapped weights alive
  std::vector<std::pair<std::string, int64_t>> checkpoint_dtypes_;  // dtype name -> tensor count
};

// Reads tokenizer_config.json / special_tokens_map.json next to config.json and, where they name
// the BOS/EOS tokens with ids, lets them override config.json (LLaMA-8x265M-MoE's config.json
// says bos 0, its tokenizer says <s> = 1).
Status resolve_special_tokens(const std::string& dir, ModelConfig* config);

}  // namespace moepp
