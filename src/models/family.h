// A model family: how its config.json becomes a ModelConfig and where its MoE tensors live.
// The registry maps config.json's model_type to one of these; no other code switches on it.
#pragma once

#include <string>

#include "base/status.h"
#include "models/config_reader.h"
#include "models/model_config.h"
#include "models/model_weights.h"
#include "models/weight_loader.h"

namespace moepp {

struct FamilyDef {
  const char* model_type;
  Family family;
  const char* source_of_truth;  // the reference modeling code this family follows
  // Fills the family's fields (MoE layer specs, defaults) after the shared decoder fields.
  Status (*parse_config)(const ConfigReader& reader, ModelConfig* config);
  // Loads the MoE tensors of layer `layer` (router and experts) into `weights`.
  Status (*load_moe_layer)(const ModelConfig& config, int64_t layer, WeightLoader& loader,
                           MoeLayerWeights* weights);
  // Declares tensors the checkpoint may carry that inference does not use.
  void (*declare_ignored)(WeightLoader& loader);
};

const FamilyDef* find_family(const std::string& model_type);
std::string supported_model_types();  // for error messages

// Family definitions (one file each).
extern const FamilyDef kMoePPFamily;
extern const FamilyDef kMixtralFamily;
extern const FamilyDef kLlamaMoeFamily;

// Shared by the families: reads "hidden_size", heads, RoPE, norms, special ids, dtype.
Status parse_decoder_fields(const ConfigReader& reader, ModelConfig* config);
// Loads an FFN expert given its three tensor names (gate, up, down) or its fused gate_up name.
Status load_ffn_expert(WeightLoader& loader, const std::string& gate, const std::string& up,
                       const std::string& down, int64_t d_model, int64_t d_expert, ExpertWeights* out);

}  // namespace moepp
