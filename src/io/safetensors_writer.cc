// f32 safetensors writer; files it writes are read back by io/safetensors.cc.
#include "io/safetensors_writer.h"

#include <cstdio>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/dtype.h"

namespace moepp {

Status write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                             const std::map<std::string, std::string>& metadata, StoredDType stored) {
  const bool bf16 = stored == StoredDType::kBF16;
  const uint64_t elem = bf16 ? 2 : 4;
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  if (metadata.empty()) meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const F32TensorView& t : tensors) {
    if (!seen.insert(t.name).second) return Status::Error(path + ": duplicate tensor name '" + t.name + "'");
    uint64_t n = 1;
    for (int64_t s : t.shape) {
      if (s < 0) return Status::Error(path + ": tensor '" + t.name + "' has a negative dimension");
      n *= static_cast<uint64_t>(s);
    }
    if (n > 0 && t.data == nullptr) return Status::Error(path + ": tensor '" + t.name + "' has no data");
    header[t.name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + elem * n}}};
    offset += elem * n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status::Error(path + ": cannot open for writing");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const F32TensorView& t : tensors) {
    size_t n = 1;
    for (int64_t s : t.shape) n *= static_cast<size_t>(s);
    // Little-endian hosts only (x86-64, aarch64): values are written as they lie in memory.
    if (!ok || n == 0) continue;
    if (!bf16) {
      ok = std::fwrite(t.data, sizeof(float), n, f) == n;
      continue;
    }
    std::vector<uint16_t> half(n);
    for (size_t i = 0; i < n; ++i) half[i] = f32_to_bf16(t.data[i]);
    ok = std::fwrite(half.data(), sizeof(uint16_t), n, f) == n;
  }
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return Status::Error(path + ": write failed (disk full?)");
  return Status::Ok();
}

}  // namespace moepp
