// Field access helpers for tokenizer.json parsing.
#include "tokenizer/hf_json.h"

namespace moepp {

std::string describe_json(const Json& j) {
  if (j.is_string()) {
    std::string s = j.get_ref<const std::string&>();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return "string \"" + s + "\"";
  }
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number()) return "number " + j.dump();
  return j.type_name();
}

const Json* HfJsonObject::find(const char* key) const {
  if (!json_.is_object()) return nullptr;
  auto it = json_.find(key);
  return it == json_.end() ? nullptr : &*it;
}

Status HfJsonObject::error(const std::string& field_path, const std::string& expected, const Json& got) const {
  return Status::Error(file_ + ": " + field_path + ": expected " + expected + ", got " + describe_json(got));
}

Status HfJsonObject::error(const std::string& field_path, const std::string& message) const {
  return Status::Error(file_ + ": " + field_path + ": " + message);
}

Status HfJsonObject::get_string(const char* key, std::string* out, bool required) const {
  const Json* v = find(key);
  if (v == nullptr || v->is_null()) {
    if (required) return error(field(key), "expected a string, got nothing");
    return Status::Ok();
  }
  if (!v->is_string()) return error(field(key), "a string", *v);
  *out = v->get<std::string>();
  return Status::Ok();
}

Status HfJsonObject::get_bool(const char* key, bool* out) const {
  const Json* v = find(key);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_boolean()) return error(field(key), "a boolean", *v);
  *out = v->get<bool>();
  return Status::Ok();
}

Status HfJsonObject::get_int(const char* key, int64_t* out, bool required) const {
  const Json* v = find(key);
  if (v == nullptr || v->is_null()) {
    if (required) return error(field(key), "expected an integer, got nothing");
    return Status::Ok();
  }
  if (!v->is_number_integer()) return error(field(key), "an integer", *v);
  *out = v->get<int64_t>();
  return Status::Ok();
}

}  // namespace moepp
