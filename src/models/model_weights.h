// Canonical weights of a decoder-only MoE model, in one layout for every family.
#pragma once

#include <vector>

#include "layers/attention.h"
#include "moe/moe_spec.h"
#include "tensor/weight.h"

namespace moepp {

struct LayerWeights {
  Weight input_norm;  // [1, d_model]
  Weight post_norm;   // [1, d_model]
  AttentionWeights attention;
  MoeLayerWeights moe;
};

struct ModelWeights {
  Weight embed;       // [vocab_size, d_model]
  Weight final_norm;  // [1, d_model]
  Weight lm_head;     // [vocab_size, d_model] (the embedding when tied)
  bool head_tied = false;  // lm_head is the embedding (tied with no lm_head tensor, or one viewing it)
  std::vector<LayerWeights> layers;
};

}  // namespace moepp
