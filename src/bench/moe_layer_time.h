// Expert-layer throughput of trained checkpoints on real text: every MoE layer's inputs are
// recorded from one forward pass over the text, then each layer's router + experts + combine
// (moe_forward) is timed on them alone, as one batch (pp) and one token per call (tg). The way
// to compare a trained MoE++ model with its vanilla twin on the tokens they really route.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "models/model.h"

namespace moepp {

struct MoeLayerTiming {
  std::string model;
  int threads = 1;
  int64_t n_tokens = 0;         // tokens timed per layer
  int64_t n_layers = 0;         // MoE layers timed
  double zc_share = 0;          // slots that went to zero-computation experts
  double ffn_slots_per_token = 0;  // FFN experts per token and layer
  double pp_tok_s = 0;          // tokens through all MoE layers per second, one batch per layer (median)
  double tg_tok_s = 0;          // the same, one token per call (median)
};

// ids: the text's tokens (at most the model's positions); repetitions >= 1 (median reported).
Result<MoeLayerTiming> time_moe_layers(const Model& model, const std::string& label, const std::vector<int32_t>& ids,
                                       int threads, int repetitions);

}  // namespace moepp
