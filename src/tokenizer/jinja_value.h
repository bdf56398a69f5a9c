// Values of the Jinja subset that renders chat templates: Python-like scalars, lists and
// insertion-ordered dicts with reference semantics (so `namespace()` objects can be mutated).
// Written by hand because Debian ships no Jinja2-compatible C++ library.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moepp::jinja {

class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict };
  using List = std::vector<Value>;
  using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, like Python

  Value() = default;  // undefined
  static Value none() { Value v; v.type_ = Type::kNone; return v; }
  Value(bool b) : type_(Type::kBool), int_(b) {}                      // NOLINT
  Value(int64_t i) : type_(Type::kInt), int_(i) {}                    // NOLINT
  Value(int i) : type_(Type::kInt), int_(i) {}                        // NOLINT
  Value(double d) : type_(Type::kFloat), float_(d) {}                 // NOLINT
  Value(std::string s) : type_(Type::kString), str_(std::make_shared<std::string>(std::move(s))) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                     // NOLINT
  static Value list(List items = {});
  static Value dict(Dict items = {}, bool is_namespace = false);
  static Value from_json(const nlohmann::ordered_json& j);  // keeps key order

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_namespace() const { return is_namespace_; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return type_ == Type::kFloat ? static_cast<int64_t>(float_) : int_; }
  double as_float() const { return type_ == Type::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return *str_; }
  List& as_list() const { return *list_; }
  Dict& as_dict() const { return *dict_; }

  // Python truthiness: empty strings/lists/dicts, 0, None and undefined are false.
  bool truthy() const;
  // Dict lookup (nullptr when absent).
  const Value* get(const std::string& key) const;
  void set(const std::string& key, Value v);
  // str(x) as Python prints it ("None", "True", "[1, 'a']").
  std::string str() const;
  // json.dumps(x, ensure_ascii=False) with Python's default separators, or with `indent`.
  std::string to_json(int indent = -1) const;
  bool equals(const Value& other) const;
  const char* type_name() const;

 private:
  void dump(std::string& out, int indent, int depth) const;
  std::string repr() const;

  Type type_ = Type::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<std::string> str_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  bool is_namespace_ = false;
};

}  // namespace moepp::jinja
