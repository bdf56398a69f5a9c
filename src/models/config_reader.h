// Typed, checked access to config.json fields: every error names the file, the field, what
// was expected and what was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace moepp {

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& json, std::string file) : json_(json), file_(std::move(file)) {}

  bool has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }
  const nlohmann::json& raw(const char* key) const { return json_[key]; }
  const std::string& file() const { return file_; }

  // Required fields.
  Result<int64_t> positive_int(const char* key) const;
  // Optional fields with a default (also used when the value is null).
  Result<int64_t> int_or(const char* key, int64_t fallback) const;
  Result<double> number_or(const char* key, double fallback) const;
  Result<bool> bool_or(const char* key, bool fallback) const;
  Result<std::string> string_or(const char* key, const std::string& fallback) const;

  Status error(const char* key, const std::string& expected) const;  // "expected X, got <value>"
  Status error(const std::string& key, const std::string& expected, const nlohmann::json& got) const;

 private:
  const nlohmann::json& json_;
  std::string file_;
};

}  // namespace moepp
