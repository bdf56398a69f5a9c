// open_checkpoint: picks the weight files of a Hugging Face model directory and loads them,
// cross-checking sharded indexes against the shards' contents.
#include "io/checkpoint_dir.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "io/pytorch_bin.h"
#include "io/safetensors.h"

namespace moepp {
namespace {

bool is_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

Result<CheckpointIndex> parse_checkpoint_index(std::string_view text, const std::string& file_name) {
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_strict(text, file_name));
  if (!j.is_object()) return Status::Error(file_name + ": expected a JSON object, got " + j.type_name());
  auto meta = j.find("metadata");
  if (meta != j.end() && !meta->is_object() && !meta->is_null())
    return Status::Error(file_name + ": metadata must be an object, got " + meta->type_name());
  auto wm = j.find("weight_map");
  if (wm == j.end()) return Status::Error(file_name + ": missing field 'weight_map'");
  if (!wm->is_object()) return Status::Error(file_name + ": weight_map must be an object, got " + wm->type_name());
  if (wm->empty()) return Status::Error(file_name + ": weight_map is empty, expected at least one tensor");
  CheckpointIndex index;
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return Status::Error(file_name + ": weight_map['" + it.key() + "'] must be a shard file name, got " +
                           it->type_name());
    const std::string& shard = it->get_ref<const std::string&>();
    // Shards are joined to the index's directory: a name must not lead anywhere else.
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard.find("..") != std::string::npos || shard.find('\0') != std::string::npos)
      return Status::Error(file_name + ": weight_map['" + it.key() + "'] = '" + shard +
                           "', expected a plain file name in the same directory (no '/', '\\' or '..')");
    index.weight_map.emplace_back(it.key(), shard);
    shards.insert(shard);
  }
  index.shards.assign(shards.begin(), shards.end());
  return index;
}

Result<TensorSource> open_weight_file(const std::string& path, WeightFormat format) {
  TensorSource src;
  if (format == WeightFormat::kSafetensors) {
    MOEPP_RETURN_IF_ERROR(add_safetensors_file(path, &src));
  } else {
    MOEPP_RETURN_IF_ERROR(add_pytorch_bin_file(path, &src));
  }
  return src;
}

Result<TensorSource> open_sharded_checkpoint(const std::string& index_path, WeightFormat format) {
  MOEPP_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(index_path));
  const std::string_view text(reinterpret_cast<const char*>(file->data()), file->size());
  MOEPP_ASSIGN_OR_RETURN(CheckpointIndex index, parse_checkpoint_index(text, index_path));
  const std::map<std::string, std::string> where(index.weight_map.begin(), index.weight_map.end());
  const std::string dir = parent_dir(index_path);

  TensorSource all;
  for (const std::string& shard : index.shards) {
    const std::string path = dir + "/" + shard;
    if (!is_file(path))
      return Status::Error(index_path + ": shard '" + shard + "' listed in weight_map not found at " + path);
    MOEPP_ASSIGN_OR_RETURN(TensorSource src, open_weight_file(path, format));
    for (const TensorEntry& e : src.entries()) {
      auto it = where.find(e.name);
      if (it == where.end())
        return Status::Error(path + ": unexpected tensor '" + e.name + "', expected only tensors listed in " +
                             index_path + " weight_map");
      if (it->second != shard)
        return Status::Error(path + ": tensor '" + e.name + "' also appears in shard '" + shard +
                             "', expected it only in '" + it->second + "' as weight_map says");
    }
    for (const auto& [name, s] : index.weight_map) {
      if (s == shard && src.find(name) == nullptr)
        return Status::Error(path + ": tensor '" + name + "' listed in " + index_path +
                             " weight_map is missing from this shard");
    }
    MOEPP_RETURN_IF_ERROR(all.merge(std::move(src)));
  }
  return all;
}

Result<TensorSource> open_checkpoint(const std::string& dir) {
  struct Candidate {
    const char* name;
    bool sharded;
    WeightFormat format;
  };
  static constexpr Candidate kCandidates[] = {
      {"model.safetensors.index.json", true, WeightFormat::kSafetensors},
      {"model.safetensors", false, WeightFormat::kSafetensors},
      {"pytorch_model.bin.index.json", true, WeightFormat::kPytorchBin},
      {"pytorch_model.bin", false, WeightFormat::kPytorchBin},
  };
  for (const Candidate& c : kCandidates) {
    const std::string path = dir + "/" + c.name;
    if (!is_file(path)) continue;
    return c.sharded ? open_sharded_checkpoint(path, c.format) : open_weight_file(path, c.format);
  }
  return Status::Error(dir + ": no weights found, expected one of model.safetensors.index.json, "
                             "model.safetensors, pytorch_model.bin.index.json, pytorch_model.bin");
}

}  // namespace moepp
