// Checkpoint directories: which weight files to read (docs §1.1) and the sharded index
// (model.safetensors.index.json / pytorch_model.bin.index.json) cross-checked with its shards.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "io/tensor_source.h"

namespace moepp {

enum class WeightFormat { kSafetensors, kPytorchBin };

struct CheckpointIndex {
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor name -> shard file name
  std::vector<std::string> shards;  // distinct shard names, sorted
};

// Parses an index file's text: {"metadata": {...}, "weight_map": {name: shard}}. Shard names must
// be plain file names (no '/', '\\' or ".."): they are joined to the index's directory.
// metadata.total_size is informational and not checked.
Result<CheckpointIndex> parse_checkpoint_index(std::string_view text, const std::string& file_name);

// Reads every shard an index names and checks that each weight_map tensor is in its shard and
// that shards hold no unlisted tensors.
Result<TensorSource> open_sharded_checkpoint(const std::string& index_path, WeightFormat format);

// Reads one weight file of the given format.
Result<TensorSource> open_weight_file(const std::string& path, WeightFormat format);

}  // namespace moepp
