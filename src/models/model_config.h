// The family-independent description of a model, built from config.json by the family's
// parser. The decoder and the MoE layers read only this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/moe_spec.h"
#include "tensor/dtype.h"

namespace moepp {

enum class Family { kMoePP, kMixtral, kLlamaMoe };
const char* family_name(Family family);

struct ModelConfig {
  Family family = Family::kMixtral;
  std::string model_type;  // as in config.json
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  int64_t sliding_window = 0;  // 0 = none
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  int32_t bos_token_id = -1;  // -1 = none
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;    // as saved; each tensor's own dtype is authoritative
  std::vector<MoeLayerSpec> layers;  // [n_layers]
};

}  // namespace moepp
