// Model description and weights in and out of training: reading a config.json of any supported
// family without weights (training from scratch), and exporting trained parameters as a
// Hugging Face MoE++ directory (config.json + model.safetensors) that `moepp generate` loads.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "io/safetensors_writer.h"
#include "models/model_config.h"
#include "tensor/weight.h"
#include "train/train_params.h"

namespace moepp {

// Parses `path` (a config.json of model_type MoE++, mixtral or llama_moe) into a ModelConfig.
Result<ModelConfig> read_model_config(const std::string& path);
// The same from parsed JSON; `path` names it in errors.
Result<ModelConfig> model_config_from_json(const nlohmann::json& json, const std::string& path);

// The MoE++ config.json for `config`. Needs the same MoE layer in every layer, FFN experts of
// one width, the expert order [ffn..., constant..., copy..., zero...] and softmax routing
// without extra scale; a model without gating residual is written with a zero gate_map (same
// forward). Errors name what cannot be expressed.
Result<nlohmann::ordered_json> moepp_config_json(const ModelConfig& config);

// Group quantisation of the stored model (`moepp quantize`): FFN experts' up_proj/down_proj,
// and the rest (attention projections, an untied lm_head), as loading quantises them
// (LoadOptions::expert_quant / rest_quant).
// A quantised tensor NAME is stored as I8 [rows, cols] (q8) or U8 [rows, ceil(cols / 2)] (q4,
// two values a byte, low nibble first) with its scales in NAME.moepp_scales, F32 [rows,
// ceil(cols / 32)] (kQuantScalesSuffix); WeightLoader reads them back as the same weights.
struct ExportQuant {
  WeightQuant experts = WeightQuant::kNone;
  WeightQuant rest = WeightQuant::kNone;
  ThreadPool* pool = nullptr;  // threads that quantise (none: the calling thread)
  WriteProgress progress;       // model.safetensors' bytes written (a command's progress bar)
};

// Writes dir/config.json, dir/generation_config.json and dir/model.safetensors (f32 or bf16 as
// `stored` says, HF MoE++ names; config torch_dtype to match). Creates dir if needed.
Status export_hf_model(const TrainParams& params, const std::string& dir, StoredDType stored = StoredDType::kF32,
                       const ExportQuant& quant = {});

// The same from a loaded model, one tensor at a time: besides the model, the export holds one
// tensor's file bytes (export_hf_model needs the f32 TrainParams, a second copy of every
// weight). Quantised tensors are stored as the model holds them, so the model must be loaded with
// the same quantisation (LoadOptions::expert_quant / rest_quant = quant.experts / quant.rest);
// float tensors are stored from its f32 or bf16 values.
Status export_model(const Model& model, const std::string& dir, StoredDType stored = StoredDType::kF32,
                    const ExportQuant& quant = {});

// Whether the model directory's config.json can be written in the MoE++ layout (LLaMA-MoE's
// router cannot): export_model's config check, without loading the weights. A config that does
// not read passes here; loading it reports the problem.
Status check_exportable(const std::string& model_dir);

// Copies the tokenizer files (a file, or tokenizer.json / tokenizer.model / tokenizer_config.json /
// special_tokens_map.json of a directory) into `out`, so `moepp generate -p` works there.
Status copy_tokenizer_files(const std::string& tokenizer, const std::string& out);

}  // namespace moepp
