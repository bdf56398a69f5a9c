// Named model shapes for benchmarking without a checkpoint: the MoE++ paper's Table 2 models
// (docs/moepp-spec.md §4.3), their vanilla MoE twins, and a Mixtral-style 1.8B model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "models/model_config.h"

namespace moepp {

// "moepp-0.6b", "moepp-1b", "moepp-2b", "moepp-7b", "moe-0.6b", ..., "mixtral-1.8b".
const std::vector<std::string>& shape_names();

// The config of a named shape; max_layers > 0 keeps only the first max_layers layers.
Result<ModelConfig> shape_config(const std::string& name, int64_t max_layers = 0);

// "moepp-1b" -> "moe-1b"; an error for shapes that have no vanilla twin.
Result<std::string> vanilla_twin(const std::string& name);

// Parameter counts from the config alone (no weights allocated): what Model::param_counts()
// would report for a model of this shape.
struct ShapeParams {
  int64_t total = 0;
  int64_t active_max = 0;  // per token, both slots on FFN experts (embedding row not counted)
};
ShapeParams shape_params(const ModelConfig& config);

}  // namespace moepp
