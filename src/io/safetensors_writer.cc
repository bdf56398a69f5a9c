// safetensors writer; files it writes are read back by io/safetensors.cc.
#include "io/safetensors_writer.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/durable_file.h"

namespace moepp {

Status write_safetensors(const std::string& path, const std::vector<TensorBytesView>& tensors,
                         const std::map<std::string, std::string>& metadata, const WriteProgress& progress) {
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  if (metadata.empty()) meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const TensorBytesView& t : tensors) {
    if (!seen.insert(t.name).second) return Status::Error(path + ": duplicate tensor name '" + t.name + "'");
    uint64_t n = 1;
    for (int64_t s : t.shape) {
      if (s < 0) return Status::Error(path + ": tensor '" + t.name + "' has a negative dimension");
      n *= static_cast<uint64_t>(s);
    }
    if (n > 0 && t.data == nullptr && !t.fill) return Status::Error(path + ": tensor '" + t.name + "' has no data");
    const uint64_t bytes = n * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  // Written beside the target and renamed over it at the end (platform/durable_file.h): a failed
  // write or a crash leaves the old file whole, and a model still reading the old file through
  // its mapping (`moepp convert -m DIR -o DIR`) keeps reading it.
  ReplacingFile out;
  MOEPP_RETURN_IF_ERROR(out.open(path));
  FILE* f = out.get();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  // Little-endian hosts only (x86-64, aarch64): values are written as they lie in memory.
  std::vector<uint8_t> filled;  // the current tensor's bytes, for those written by fill
  uint64_t written = 0;         // of `offset` tensor bytes in all
  for (size_t i = 0; i < tensors.size() && ok; ++i) {
    if (sizes[i] == 0) continue;
    const void* data = tensors[i].data;
    if (data == nullptr) {
      filled.assign(sizes[i], 0);
      tensors[i].fill(filled.data());
      data = filled.data();
    }
    ok = std::fwrite(data, 1, sizes[i], f) == sizes[i];
    written += sizes[i];
    if (progress) progress(static_cast<int64_t>(written), static_cast<int64_t>(offset));
  }
  return out.commit(ok);
}

Status write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata, StoredDType stored) {
  std::vector<TensorBytesView> views;
  std::vector<std::unique_ptr<std::vector<uint16_t>>> halves;  // bf16 copies the views point into
  for (const F32TensorView& t : tensors) {
    if (stored == StoredDType::kF32 || t.data == nullptr) {
      views.push_back({t.name, DType::kF32, t.shape, t.data, {}});
      continue;
    }
    size_t n = 1;
    for (int64_t s : t.shape) n *= static_cast<size_t>(std::max<int64_t>(s, 0));
    auto half = std::make_unique<std::vector<uint16_t>>(n);
    for (size_t i = 0; i < n; ++i) (*half)[i] = f32_to_bf16(t.data[i]);
    views.push_back({t.name, DType::kBF16, t.shape, half->data(), {}});
    halves.push_back(std::move(half));
  }
  return write_safetensors(path, views, metadata);
}

}  // namespace moepp
