// The tensors of a checkpoint, whatever its file format: named, typed views into mapped files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "platform/mapped_file.h"
#include "tensor/dtype.h"

namespace moepp {

struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // PyTorch order, row-major, contiguous
  const uint8_t* data = nullptr;  // little-endian elements; may be unaligned
  size_t nbytes = 0;
  std::string file;  // the file it came from, for error messages

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Owns the mappings (and any copies made for non-contiguous data) behind its entries.
class TensorSource {
 public:
  const TensorEntry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const std::string& format() const { return format_; }  // "safetensors" or "pytorch"

  // Building (used by the readers). add() fails on a duplicate name.
  Status add(TensorEntry entry);
  void keep_alive(std::shared_ptr<MappedFile> file) { files_.push_back(std::move(file)); }
  // Stores bytes owned by the source (e.g. a non-contiguous tensor made contiguous).
  const uint8_t* own(std::vector<uint8_t> bytes);
  void set_format(std::string format) { format_ = std::move(format); }
  // Moves all entries and owned memory of `other` in (sharded checkpoints).
  Status merge(TensorSource&& other);

 private:
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned_;
  std::string format_;
};

// Opens the weights of a Hugging Face model directory, in this order of preference:
// model.safetensors.index.json, model.safetensors, pytorch_model.bin.index.json,
// pytorch_model.bin. Every shard listed in an index is read and cross-checked with it.
Result<TensorSource> open_checkpoint(const std::string& dir);

}  // namespace moepp
