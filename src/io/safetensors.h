// safetensors reader: header parsing with every check of the reference reader (docs §8.2),
// zero-copy entries into the mapped file, and the strict JSON parsing shared with index files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "io/tensor_source.h"

namespace moepp {

// Largest header the reference reader accepts (safetensors MAX_HEADER_SIZE).
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

struct SafetensorsFile {
  std::vector<TensorEntry> tensors;  // in header order; data points into the parsed buffer
  std::map<std::string, std::string> metadata;  // "__metadata__", if present
  size_t data_start = 0;  // 8 + N: offset of the byte buffer in the file
};

// Parses and validates a whole safetensors file held in memory; entries point into `data`.
// `file_name` prefixes every error message.
Result<SafetensorsFile> parse_safetensors(const uint8_t* data, size_t size,
                                          const std::string& file_name);

// Maps `path`, validates it and adds its tensors to `out` (which keeps the mapping alive).
Status add_safetensors_file(const std::string& path, TensorSource* out);

// Strict JSON: rejects invalid UTF-8, syntax errors and duplicate keys in any object
// (nlohmann::json would silently keep the last duplicate). Throws nothing.
Result<nlohmann::json> parse_json_strict(std::string_view text, const std::string& where);


}  // namespace moepp
