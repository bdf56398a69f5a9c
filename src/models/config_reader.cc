// Field readers for config.json.
#include "models/config_reader.h"

#include <cmath>

namespace moepp {

Status ConfigReader::error(const std::string& key, const std::string& expected,
                           const nlohmann::json& got) const {
  std::string shown = got.dump();
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  return Status::Error(file_ + ": field '" + key + "': expected " + expected + ", got " + shown);
}

Status ConfigReader::error(const char* key, const std::string& expected) const {
  if (!json_.contains(key)) return Status::Error(file_ + ": field '" + key + "': expected " + expected + ", got nothing (missing)");
  return error(std::string(key), expected, json_[key]);
}

Result<int64_t> ConfigReader::positive_int(const char* key) const {
  if (!has(key) || !json_[key].is_number_integer() || json_[key].get<int64_t>() <= 0)
    return error(key, "a positive integer");
  return json_[key].get<int64_t>();
}

Result<int64_t> ConfigReader::int_or(const char* key, int64_t fallback) const {
  if (!has(key)) return fallback;
  if (!json_[key].is_number_integer()) return error(key, "an integer");
  return json_[key].get<int64_t>();
}

Result<double> ConfigReader::number_or(const char* key, double fallback) const {
  if (!has(key)) return fallback;
  if (!json_[key].is_number() || !std::isfinite(json_[key].get<double>())) return error(key, "a finite number");
  return json_[key].get<double>();
}

Result<bool> ConfigReader::bool_or(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  if (!json_[key].is_boolean()) return error(key, "true or false");
  return json_[key].get<bool>();
}

Result<std::string> ConfigReader::string_or(const char* key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  if (!json_[key].is_string()) return error(key, "a string");
  return json_[key].get<std::string>();
}

}  // namespace moepp
