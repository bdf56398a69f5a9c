// config.json -> ModelConfig through the family registry, and the reverse for MoE++.
#include "train/model_io.h"

#include <deque>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <sstream>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "models/config_reader.h"
#include "models/family.h"
#include "platform/durable_file.h"
#include "tensor/quantize.h"

namespace moepp {

Result<ModelConfig> read_model_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json json, parse_json_strict(ss.str(), path));
  return model_config_from_json(json, path);
}

Result<ModelConfig> model_config_from_json(const nlohmann::json& json, const std::string& path) {
  if (!json.is_object()) return Status::Error(path + ": expected a JSON object");
  ConfigReader reader(json, path);
  MOEPP_ASSIGN_OR_RETURN(std::string model_type, reader.string_or("model_type", ""));
  const FamilyDef* family = find_family(model_type);
  if (family == nullptr) return reader.error("model_type", "one of " + supported_model_types());
  ModelConfig c;
  c.family = family->family;
  c.model_type = model_type;
  MOEPP_RETURN_IF_ERROR(parse_decoder_fields(reader, &c));
  MOEPP_RETURN_IF_ERROR(family->parse_config(reader, &c));
  return c;
}

Result<nlohmann::ordered_json> moepp_config_json(const ModelConfig& c) {
  const std::string where = "export as MoE++: ";
  if (c.layers.empty()) return Status::Error(where + "the model has no layers");
  const MoeLayerSpec& s = c.layers[0];
  for (const MoeLayerSpec& l : c.layers)
    if (l.kinds != s.kinds || l.ffn_width != s.ffn_width || l.router.network != s.router.network ||
        l.router.hidden != s.router.hidden || l.router.logit_std_norm != s.router.logit_std_norm ||
        l.router.logit_norm_std != s.router.logit_norm_std || l.router.scoring != s.router.scoring ||
        l.router.top_k != s.router.top_k || l.input_scale != s.input_scale)
      return Status::Error(where + "layers differ in their MoE setup; MoE++ configs describe one layer for all");
  const int64_t n_ffn = s.count(ExpertKind::kFfn), n_const = s.count(ExpertKind::kConstant);
  const int64_t n_copy = s.count(ExpertKind::kCopy), n_zero = s.count(ExpertKind::kZero);
  int64_t d_expert = 0;
  for (int64_t e = 0; e < s.n_experts(); ++e) {
    const ExpertKind want = e < n_ffn ? ExpertKind::kFfn
                            : e < n_ffn + n_const ? ExpertKind::kConstant
                            : e < n_ffn + n_const + n_copy ? ExpertKind::kCopy : ExpertKind::kZero;
    if (s.kinds[e] != want) return Status::Error(where + "experts must be ordered ffn, constant, copy, zero");
    if (want == ExpertKind::kFfn) {
      if (d_expert != 0 && s.ffn_width[e] != d_expert) return Status::Error(where + "FFN experts of different widths");
      d_expert = s.ffn_width[e];
    }
  }
  const RouterSpec& r = s.router;
  const bool mixtral_gating = r.scoring == RouterScoring::kTopKThenSoftmax;
  if (r.scoring == RouterScoring::kTopKRaw || r.scale != 1.0f || !r.multiply_scores ||
      (!mixtral_gating && !r.renormalize))
    return Status::Error(where + "router scoring other than softmax + renormalised top-k (or top-k + softmax)");
  if (!mixtral_gating && n_zero > 0 && !r.zero_expert_gets_no_weight)
    return Status::Error(where + "zero experts that keep their weight");
  if (r.network == RouterNetwork::kMlpTanh && r.hidden != 8 * s.n_experts())
    return Status::Error(where + "MoE++ 2-layer routers have 8 * num_experts hidden units");
  if (mixtral_gating && s.input_scale != 1.0f) return Status::Error(where + "input scaling with mixtral gating");
  if (s.input_scale != 1.0f && s.input_scale != static_cast<float>(r.top_k))
    return Status::Error(where + "expert input scale other than 1 or top_k");
  nlohmann::ordered_json j;
  j["architectures"] = {"MoeForCausalLM"};
  j["model_type"] = "MoE++";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = d_expert;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  if (c.head_dim * c.n_heads != c.d_model) j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings > 0 ? c.max_position_embeddings : 2048;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  j["num_experts"] = {s.n_experts()};
  j["num_constant_experts"] = n_const;
  j["num_copy_experts"] = n_copy;
  j["num_zero_experts"] = n_zero;
  j["num_experts_per_tok"] = r.top_k;
  j["moe_expert_interval"] = 1;
  j["moe_use_mixtral_gating"] = mixtral_gating;
  j["moe_2layer_gate"] = r.network == RouterNetwork::kMlpTanh;
  j["moe_use_logits_norm"] = r.logit_std_norm;
  j["moe_gate_norm_std"] = r.logit_norm_std;
  j["moe_feature_no_mul_topk"] = s.input_scale == 1.0f;
  j["torch_dtype"] = "float32";
  return j;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Which quantisation a tensor of the MoE++ layout gets: the matrices quantised at load
// (LoadOptions::expert_quant / rest_quant).
WeightQuant quant_for(const std::string& name, const ExportQuant& quant) {
  if (name.find(".experts.") != std::string::npos && (ends_with(name, ".up_proj.weight") || ends_with(name, ".down_proj.weight")))
    return quant.experts;
  if ((name.find(".self_attn.") != std::string::npos && ends_with(name, "_proj.weight")) || name == "lm_head.weight")
    return quant.rest;
  return WeightQuant::kNone;
}

// The safetensors metadata of an export: the quantisation, when there is one.
std::map<std::string, std::string> export_metadata(const ExportQuant& quant) {
  if (quant.experts == WeightQuant::kNone && quant.rest == WeightQuant::kNone) return {};
  return {{"format", "pt"},
          {"moepp.quantization", std::string("experts=") + quant_name(quant.experts) + " rest=" + quant_name(quant.rest) +
                                     " group=" + std::to_string(kQuantGroup)}};
}

// dir/model.safetensors from `tensors`, then config.json and generation_config.json.
Status write_export(const std::string& dir, const ModelConfig& c, StoredDType stored,
                    const std::vector<TensorBytesView>& tensors, const ExportQuant& quant) {
  MOEPP_ASSIGN_OR_RETURN(nlohmann::ordered_json config, moepp_config_json(c));
  if (stored == StoredDType::kBF16) config["torch_dtype"] = "bfloat16";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create directory: " + ec.message());
  MOEPP_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", tensors, export_metadata(quant), quant.progress));
  const std::string config_text = config.dump(2) + "\n";
  MOEPP_RETURN_IF_ERROR(write_file_replacing(dir + "/config.json", config_text.data(), config_text.size()));
  nlohmann::ordered_json gen;
  if (config.contains("bos_token_id")) gen["bos_token_id"] = config["bos_token_id"];
  if (config.contains("eos_token_id")) gen["eos_token_id"] = config["eos_token_id"];
  const std::string gen_text = gen.dump(2) + "\n";
  return write_file_replacing(dir + "/generation_config.json", gen_text.data(), gen_text.size());
}

// The zero gate_map MoE++ checkpoints need, for each layer of a model without gating residual.
std::vector<TensorBytesView> zero_gate_maps(const TrainParams& layout, StoredDType stored) {
  std::vector<TensorBytesView> out;
  for (int64_t l = 0; l < layout.config().n_layers; ++l) {
    if (layout.layers[l].gate_map.valid()) continue;
    const int64_t n = layout.config().layers[l].n_experts();
    out.push_back({"model.layers." + std::to_string(l) + ".mlp.moe.gate.gate_map.weight",
                   stored == StoredDType::kF32 ? DType::kF32 : DType::kBF16, {n, n}, nullptr,
                   [](uint8_t*) {}});  // the writer's buffer starts zeroed
  }
  return out;
}

// Row-major bytes of a q8/q4 weight as the file stores them (values; scales apart), from either
// layout: q8 int8 [rows, cols], q4 [rows, ceil(cols / 2)] with column 2k in the low nibble.
void quantized_values_row_major(const Weight& w, uint8_t* out, ThreadPool* pool) {
  const int64_t G = w.groups_per_row();
  const bool q4 = w.quant == WeightQuant::kQ4;
  const int64_t row_bytes = q4 ? w.q4_row_bytes() : w.cols;
  parallel_ranges(pool, w.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t c0 = g * kQuantGroup, cols = std::min(kQuantGroup, w.cols - c0);
        if (!q4) {
          for (int64_t j = 0; j < cols; ++j) out[r * row_bytes + c0 + j] = static_cast<uint8_t>(w.q8_value(r, c0 + j));
          continue;
        }
        uint8_t* dst = out + r * row_bytes + c0 / 2;
        for (int64_t j = 0; j < cols; ++j) dst[j / 2] |= static_cast<uint8_t>(w.q4_nibble(r, c0 + j) << (4 * (j % 2)));
      }
  });
}

void quantized_scales_row_major(const Weight& w, float* out) {
  const int64_t G = w.groups_per_row();
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t g = 0; g < G; ++g) out[r * G + g] = w.scales[w.scale_index(r, g)];
}

// A float weight's values row-major as f32 or rounded to bf16 (nearest even).
void float_values_row_major(const Weight& w, StoredDType stored, uint8_t* out, ThreadPool* pool) {
  parallel_ranges(pool, w.rows, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t r = r0; r < r1; ++r) {
      w.row_to_f32(r, row.data());
      if (stored == StoredDType::kF32) {
        std::memcpy(out + r * w.cols * 4, row.data(), static_cast<size_t>(w.cols) * 4);
        continue;
      }
      uint16_t* dst = reinterpret_cast<uint16_t*>(out) + r * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) dst[c] = f32_to_bf16(row[c]);
    }
  });
}

// The layout's tensors written from `weight_of(tensor, q)`, the weight of each as the file stores
// it (q8/q4 where quant_for says so), a tensor's bytes produced when its turn comes.
using StoredWeightOf = std::function<Result<const Weight*>(const ParamTensor& t, WeightQuant q)>;
Status export_weights(const TrainParams& layout, const ModelConfig& c, const StoredWeightOf& weight_of,
                      const std::string& dir, StoredDType stored, const ExportQuant& quant) {
  std::vector<TensorBytesView> out;
  ThreadPool* pool = quant.pool;
  for (const ParamTensor& t : layout.tensors()) {
    const WeightQuant q = t.shape.size() == 2 ? quant_for(t.name, quant) : WeightQuant::kNone;
    MOEPP_ASSIGN_OR_RETURN(const Weight* stored_weight, weight_of(t, q));
    const Weight& w = *stored_weight;
    if (q == WeightQuant::kNone) {
      out.push_back({t.name, stored == StoredDType::kF32 ? DType::kF32 : DType::kBF16, t.shape, nullptr,
                     [&w, stored, pool](uint8_t* bytes) { float_values_row_major(w, stored, bytes, pool); }});
      continue;
    }
    const std::vector<int64_t> values_shape{w.rows, q == WeightQuant::kQ8 ? w.cols : w.q4_row_bytes()};
    out.push_back({t.name, q == WeightQuant::kQ8 ? DType::kI8 : DType::kU8, values_shape, nullptr,
                   [&w, pool](uint8_t* bytes) { quantized_values_row_major(w, bytes, pool); }});
    out.push_back({t.name + kQuantScalesSuffix, DType::kF32, {w.rows, w.groups_per_row()}, nullptr,
                   [&w](uint8_t* bytes) { quantized_scales_row_major(w, reinterpret_cast<float*>(bytes)); }});
  }
  for (TensorBytesView& z : zero_gate_maps(layout, stored)) out.push_back(std::move(z));
  return write_export(dir, c, stored, out, quant);
}

}  // namespace

Status export_hf_model(const TrainParams& params, const std::string& dir, StoredDType stored,
                       const ExportQuant& quant) {
  std::deque<Weight> weights;  // f32 views of the parameters, or their quantised copies
  auto weight_of = [&](const ParamTensor& t, WeightQuant q) -> Result<const Weight*> {
    Weight view;
    view.rows = t.ref.rows;
    view.cols = t.ref.cols;
    view.data = params.at(t.ref);
    MOEPP_ASSIGN_OR_RETURN(Weight w, quantize_weight(view, q, quant.pool));  // the view itself for kNone
    weights.push_back(std::move(w));
    return &weights.back();
  };
  return export_weights(params, params.config(), weight_of, dir, stored, quant);
}

Status export_model(const Model& model, const std::string& dir, StoredDType stored, const ExportQuant& quant) {
  MOEPP_ASSIGN_OR_RETURN(TrainParams layout, TrainParams::layout(model.config()));
  std::map<int64_t, const Weight*> weight_at;  // by the layout's offset
  Status found = TrainParams::for_each_model_weight(model, layout, [&](const Weight& w, const ParamRef& r, const std::string&) {
    weight_at[r.offset] = &w;
    return Status::Ok();
  });
  if (!found.ok()) return found.with_context("export");
  auto weight_of = [&](const ParamTensor& t, WeightQuant q) -> Result<const Weight*> {
    const Weight* w = weight_at.at(t.ref.offset);
    if (w->quant != q && w->quant != WeightQuant::kNone)  // a checkpoint stored quantised
      return Status::Error("export: " + t.name + " is stored as " + weight_format_name(*w) + ", expected " +
                           (q == WeightQuant::kNone ? std::string("f32 or bf16: convert needs a float checkpoint")
                                                    : quant_name(q) + std::string(": quantize it from a float checkpoint")));
    if (w->quant != q)  // a caller that loaded the model without the export's quantisation
      return Status::Error("export: " + t.name + " is " + weight_format_name(*w) + ", expected " + quant_name(q) +
                           " (load the model with the export's quantisation)");
    return w;
  };
  return export_weights(layout, model.config(), weight_of, dir, stored, quant);
}

Status check_exportable(const std::string& model_dir) {
  Result<ModelConfig> config = read_model_config(model_dir + "/config.json");
  if (!config.ok()) return Status::Ok();
  return moepp_config_json(*config).status();
}

Status copy_tokenizer_files(const std::string& tokenizer, const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(tokenizer, ec)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
      if (fs::exists(fs::path(tokenizer) / name)) files.push_back(fs::path(tokenizer) / name);
  } else {
    files.push_back(tokenizer);
  }
  for (const fs::path& f : files) {
    if (fs::equivalent(f.parent_path().empty() ? fs::path(".") : f.parent_path(), out, ec)) continue;
    fs::copy_file(f, fs::path(out) / f.filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::Error(f.string() + ": cannot copy into " + out + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace moepp
