// Tensor names: parameters under their HF names, moments under "adamw.m." / "adamw.v." + name.
#include "train/train_checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/checkpoint_dir.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "platform/durable_file.h"

namespace moepp {

Status save_train_checkpoint(const std::string& dir, const TrainParams& params, AdamW& adamw,
                             const nlohmann::json& meta) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create checkpoint directory: " + ec.message());
  std::vector<F32TensorView> views;
  for (const ParamTensor& t : params.tensors()) {
    views.push_back({t.name, t.shape, params.at(t.ref)});
    views.push_back({"adamw.m." + t.name, t.shape, adamw.m().data() + t.ref.offset});
    views.push_back({"adamw.v." + t.name, t.shape, adamw.v().data() + t.ref.offset});
  }
  const std::string state_file = "train_state-" + std::to_string(adamw.steps()) + ".safetensors";
  const std::string js = dir + "/train_state.json";
  MOEPP_RETURN_IF_ERROR(write_safetensors_f32(dir + "/" + state_file, views));
  nlohmann::json m = meta;
  m["step"] = adamw.steps();
  m["state_file"] = state_file;
  // On the disk before the superseded states below go: a crash leaves the old or the new state.
  const std::string text = m.dump(1) + "\n";
  MOEPP_RETURN_IF_ERROR(write_file_replacing(js, text.data(), text.size()));
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {  // superseded states
    const std::string name = entry.path().filename().string();
    // (and what an interrupted save left: write_safetensors writes NAME.partial first)
    if (name != state_file && name.rfind("train_state-", 0) == 0 &&
        (entry.path().extension() == ".safetensors" || entry.path().extension() == ".partial"))
      std::filesystem::remove(entry.path(), ec);
  }
  return Status::Ok();
}

Result<nlohmann::json> read_train_checkpoint_meta(const std::string& dir) {
  const std::string js = dir + "/train_state.json";
  std::ifstream in(js, std::ios::binary);
  if (!in) return Status::Error(js + ": cannot open (no checkpoint to resume from)");
  std::stringstream ss;
  ss << in.rdbuf();
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json meta, parse_json_strict(ss.str(), js));
  if (!meta.is_object() || !meta.contains("step") || !meta["step"].is_number_integer() || meta["step"].get<int64_t>() < 0 ||
      !meta.contains("state_file") || !meta["state_file"].is_string() ||
      meta["state_file"].get<std::string>().find('/') != std::string::npos)
    return Status::Error(js + ": expected an object with a non-negative integer \"step\" and a \"state_file\" name");
  return meta;
}

Status load_train_checkpoint(const std::string& dir, TrainParams* params, AdamW* adamw) {
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json meta, read_train_checkpoint_meta(dir));
  const std::string st = dir + "/" + meta["state_file"].get<std::string>();
  MOEPP_ASSIGN_OR_RETURN(TensorSource source, open_weight_file(st, WeightFormat::kSafetensors));
  auto restore = [&](const std::string& name, const ParamTensor& t, float* dst) -> Status {
    const TensorEntry* e = source.find(name);
    if (e == nullptr) return Status::Error(st + ": missing tensor " + name);
    if (e->dtype != DType::kF32 || e->shape != t.shape)
      return Status::Error(st + ": tensor " + name + ": expected F32 " + std::to_string(t.ref.size()) +
                           " values in the model's shape; the checkpoint is of another model");
    std::memcpy(dst, e->data, sizeof(float) * static_cast<size_t>(t.ref.size()));
    return Status::Ok();
  };
  if (static_cast<int64_t>(source.entries().size()) != 3 * static_cast<int64_t>(params->tensors().size()))
    return Status::Error(st + ": " + std::to_string(source.entries().size()) + " tensors, expected " +
                         std::to_string(3 * params->tensors().size()) + "; the checkpoint is of another model");
  for (const ParamTensor& t : params->tensors()) {
    MOEPP_RETURN_IF_ERROR(restore(t.name, t, params->at(t.ref)));
    MOEPP_RETURN_IF_ERROR(restore("adamw.m." + t.name, t, adamw->m().data() + t.ref.offset));
    MOEPP_RETURN_IF_ERROR(restore("adamw.v." + t.name, t, adamw->v().data() + t.ref.offset));
  }
  adamw->set_steps(meta["step"].get<int64_t>());
  return Status::Ok();
}

}  // namespace moepp
