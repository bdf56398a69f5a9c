// Typed, non-throwing access to tokenizer.json fields; errors read
// "<file>: <field path>: expected X, got Y".
#pragma once

#include <memory>
#include <vector>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace moepp {

using Json = nlohmann::json;

// A JSON object plus the path that names it in error messages (file and field).
class HfJsonObject {
 public:
  HfJsonObject(const Json& json, std::string file, std::string path)
      : json_(json), file_(std::move(file)), path_(std::move(path)) {}

  const Json& json() const { return json_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  // nullptr when the key is absent.
  const Json* find(const char* key) const;
  HfJsonObject child(const Json& json, const std::string& sub_path) const { return {json, file_, sub_path}; }

  Status error(const std::string& field_path, const std::string& expected, const Json& got) const;
  Status error(const std::string& field_path, const std::string& message) const;

  // Absent or null keys leave *out unchanged unless `required`.
  Status get_string(const char* key, std::string* out, bool required) const;
  Status get_bool(const char* key, bool* out) const;
  Status get_int(const char* key, int64_t* out, bool required) const;

 private:
  const Json& json_;
  std::string file_;
  std::string path_;
};

// Short description of a JSON value's type (and value for scalars) for error messages.
std::string describe_json(const Json& j);

// The components listed under obj[key] (a "Sequence" normalizer, pre-tokenizer or decoder),
// each parsed with `parse`; null entries are skipped.
template <typename T, typename ParseFn>
Result<std::vector<std::unique_ptr<T>>> parse_component_list(const HfJsonObject& obj, const char* key, ParseFn parse) {
  const Json* list = obj.find(key);
  if (list == nullptr || !list->is_array()) return obj.error(obj.field(key), "an array", list ? *list : Json());
  std::vector<std::unique_ptr<T>> parts;
  for (size_t i = 0; i < list->size(); ++i) {
    auto part = parse(obj.child((*list)[i], obj.field(key) + "[" + std::to_string(i) + "]"));
    if (!part.ok()) return part.status();
    if (*part != nullptr) parts.push_back(std::move(part).value());
  }
  return parts;
}

}  // namespace moepp
