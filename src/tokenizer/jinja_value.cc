// Python-compatible printing, JSON dumping and comparison of Jinja values.
#include "tokenizer/jinja_value.h"

#include <cmath>
#include <cstdio>

namespace moepp::jinja {

Value Value::list(List items) {
  Value v;
  v.type_ = Type::kList;
  v.list_ = std::make_shared<List>(std::move(items));
  return v;
}

Value Value::dict(Dict items, bool is_namespace) {
  Value v;
  v.type_ = Type::kDict;
  v.dict_ = std::make_shared<Dict>(std::move(items));
  v.is_namespace_ = is_namespace;
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict items;
      for (const auto& [k, e] : j.items()) items.emplace_back(k, from_json(e));
      return dict(std::move(items));
    }
    default: return Value();
  }
}

bool Value::truthy() const {
  switch (type_) {
    case Type::kUndefined:
    case Type::kNone: return false;
    case Type::kBool:
    case Type::kInt: return int_ != 0;
    case Type::kFloat: return float_ != 0.0;
    case Type::kString: return !str_->empty();
    case Type::kList: return !list_->empty();
    case Type::kDict: return !dict_->empty() || is_namespace_;
  }
  return false;
}

const Value* Value::get(const std::string& key) const {
  if (type_ != Type::kDict) return nullptr;
  for (const auto& [k, v] : *dict_)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) {
  for (auto& [k, old] : *dict_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  dict_->emplace_back(key, std::move(v));
}

namespace {

std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest repr that round-trips, with ".0" for integral values, as Python prints.
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string python_quote(const std::string& s) {
  const char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    if (c == '\t') { out += "\\t"; continue; }
    out += c;
  }
  return out + quote;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // ensure_ascii=False keeps UTF-8 as is
        }
    }
  }
  out += '"';
}

}  // namespace

std::string Value::repr() const {
  if (type_ == Type::kString) return python_quote(*str_);
  return str();
}

std::string Value::str() const {
  switch (type_) {
    case Type::kUndefined: return "";
    case Type::kNone: return "None";
    case Type::kBool: return int_ ? "True" : "False";
    case Type::kInt: return std::to_string(int_);
    case Type::kFloat: return python_float(float_);
    case Type::kString: return *str_;
    case Type::kList: {
      std::string s = "[";
      for (size_t i = 0; i < list_->size(); ++i) s += (i ? ", " : "") + (*list_)[i].repr();
      return s + "]";
    }
    case Type::kDict: {
      std::string s = "{";
      for (size_t i = 0; i < dict_->size(); ++i)
        s += (i ? ", " : "") + python_quote((*dict_)[i].first) + ": " + (*dict_)[i].second.repr();
      return s + "}";
    }
  }
  return "";
}

void Value::dump(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (type_) {
    case Type::kUndefined:
    case Type::kNone: out += "null"; return;
    case Type::kBool: out += int_ ? "true" : "false"; return;
    case Type::kInt: out += std::to_string(int_); return;
    case Type::kFloat: out += python_float(float_); return;
    case Type::kString: json_string(out, *str_); return;
    case Type::kList:
      if (list_->empty()) { out += "[]"; return; }
      out += '[';
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        (*list_)[i].dump(out, indent, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    case Type::kDict:
      if (dict_->empty()) { out += "{}"; return; }
      out += '{';
      for (size_t i = 0; i < dict_->size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_string(out, (*dict_)[i].first);
        out += ": ";
        (*dict_)[i].second.dump(out, indent, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
  }
}

std::string Value::to_json(int indent) const {
  std::string out;
  dump(out, indent, 0);
  return out;
}

bool Value::equals(const Value& o) const {
  if (is_number() && o.is_number()) return as_float() == o.as_float();
  if (type_ == Type::kBool || o.type_ == Type::kBool) {
    if ((type_ == Type::kBool || type_ == Type::kInt) && (o.type_ == Type::kBool || o.type_ == Type::kInt)) return int_ == o.int_;
    return false;
  }
  if (type_ != o.type_) return (is_undefined() || is_none()) && (o.is_undefined() || o.is_none()) && type_ == o.type_;
  switch (type_) {
    case Type::kUndefined:
    case Type::kNone: return true;
    case Type::kString: return *str_ == *o.str_;
    case Type::kList:
      if (list_->size() != o.list_->size()) return false;
      for (size_t i = 0; i < list_->size(); ++i)
        if (!(*list_)[i].equals((*o.list_)[i])) return false;
      return true;
    case Type::kDict:
      if (dict_->size() != o.dict_->size()) return false;
      for (const auto& [k, v] : *dict_) {
        const Value* w = o.get(k);
        if (w == nullptr || !v.equals(*w)) return false;
      }
      return true;
    default: return false;
  }
}

const char* Value::type_name() const {
  switch (type_) {
    case Type::kUndefined: return "undefined";
    case Type::kNone: return "none";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kString: return "string";
    case Type::kList: return "list";
    case Type::kDict: return "dict";
  }
  return "?";
}

}  // namespace moepp::jinja
