// Rendering of the Jinja subset: expression evaluation with Python semantics, Jinja scoping
// (a for loop's variables and sets stay inside it; namespace() objects carry state out),
// the filters, tests, globals and str/dict/list methods chat templates use.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_template.h"

namespace moepp::jinja {
namespace {

Status eval_error(int line, const std::string& what) {
  return Status::Error("chat template: line " + std::to_string(line) + ": " + what);
}

enum class Flow { kNormal, kBreak, kContinue };

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) while (b < e && chars.find(s[b]) != std::string::npos) ++b;
  if (right) while (e > b && chars.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}

const std::string kWhitespace = " \t\n\r\f\v";

std::string to_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string to_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Renderer {
 public:
  explicit Renderer(const Value& context) { scopes_.push_back(context.is_dict() ? context : Value::dict()); }

  Status render(const Body& body, std::string* out, Flow* flow) {
    for (const NodePtr& n : body) {
      MOEPP_RETURN_IF_ERROR(render_node(*n, out, flow));
      if (*flow != Flow::kNormal) return Status::Ok();
    }
    return Status::Ok();
  }

 private:
  Status render_node(const Node& n, std::string* out, Flow* flow) {
    switch (n.kind) {
      case Node::Kind::kRoot: return render(n.body, out, flow);
      case Node::Kind::kText: *out += n.text; return Status::Ok();
      case Node::Kind::kOutput: {
        MOEPP_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
        *out += v.str();
        return Status::Ok();
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            MOEPP_ASSIGN_OR_RETURN(Value c, eval(*cond));
            take = c.truthy();
          }
          if (take) return render(body, out, flow);
        }
        return Status::Ok();
      case Node::Kind::kSet: {
        MOEPP_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
        if (n.vars.size() == 1) {
          scopes_.back().set(n.vars[0], v);
          return Status::Ok();
        }
        const Value* target = lookup(n.vars[0]);
        if (target == nullptr || !target->is_namespace())
          return eval_error(n.line, "cannot set attribute '" + n.vars[1] + "' of '" + n.vars[0] + "': not a namespace()");
        Value ns = *target;
        ns.set(n.vars[1], v);
        return Status::Ok();
      }
      case Node::Kind::kBreak: *flow = Flow::kBreak; return Status::Ok();
      case Node::Kind::kContinue: *flow = Flow::kContinue; return Status::Ok();
      case Node::Kind::kFor: return render_for(n, out, flow);
    }
    return Status::Ok();
  }

  Status render_for(const Node& n, std::string* out, Flow* flow) {
    MOEPP_ASSIGN_OR_RETURN(Value iterable, eval(*n.expr));
    std::vector<Value> items;
    if (iterable.is_list()) {
      items = iterable.as_list();
    } else if (iterable.is_dict()) {
      for (const auto& kv : iterable.as_dict()) items.push_back(Value(kv.first));
    } else if (iterable.is_string()) {
      for (char c : iterable.as_string()) items.push_back(Value(std::string(1, c)));
    } else if (!iterable.is_undefined() && !iterable.is_none()) {
      return eval_error(n.line, std::string("cannot loop over a ") + iterable.type_name());
    }
    // The loop's own scope; "if" filters apply before loop.index is counted, as in Jinja.
    scopes_.push_back(Value::dict());
    std::vector<Value> kept;
    for (const Value& item : items) {
      MOEPP_RETURN_IF_ERROR(bind(n, item));
      if (n.filter) {
        MOEPP_ASSIGN_OR_RETURN(Value keep, eval(*n.filter));
        if (!keep.truthy()) continue;
      }
      kept.push_back(item);
    }
    const int64_t len = static_cast<int64_t>(kept.size());
    for (int64_t i = 0; i < len; ++i) {
      scopes_.back() = Value::dict();
      MOEPP_RETURN_IF_ERROR(bind(n, kept[i]));
      Value loop = Value::dict({{"index0", Value(i)}, {"index", Value(i + 1)}, {"first", Value(i == 0)},
                                {"last", Value(i == len - 1)}, {"length", Value(len)},
                                {"revindex", Value(len - i)}, {"revindex0", Value(len - i - 1)},
                                {"previtem", i > 0 ? kept[i - 1] : Value()},
                                {"nextitem", i + 1 < len ? kept[i + 1] : Value()}});
      scopes_.back().set("loop", loop);
      Flow inner = Flow::kNormal;
      MOEPP_RETURN_IF_ERROR(render(n.body, out, &inner));
      if (inner == Flow::kBreak) break;
    }
    scopes_.pop_back();
    if (len == 0) return render(n.else_body, out, flow);
    return Status::Ok();
  }

  Status bind(const Node& n, const Value& item) {
    if (n.vars.size() == 1) {
      scopes_.back().set(n.vars[0], item);
      return Status::Ok();
    }
    if (!item.is_list() || item.as_list().size() != n.vars.size())
      return eval_error(n.line, "cannot unpack a " + std::string(item.type_name()) + " into " +
                                    std::to_string(n.vars.size()) + " loop variables");
    for (size_t i = 0; i < n.vars.size(); ++i) scopes_.back().set(n.vars[i], item.as_list()[i]);
    return Status::Ok();
  }

  const Value* lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it)
      if (const Value* v = it->get(name)) return v;
    return nullptr;
  }

  Result<Value> eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: {
        const Value* v = lookup(e.name);
        return v ? *v : Value();
      }
      case Expr::Kind::kList: {
        Value::List items;
        for (const ExprPtr& a : e.args) {
          MOEPP_ASSIGN_OR_RETURN(Value v, eval(*a));
          items.push_back(v);
        }
        return Value::list(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          MOEPP_ASSIGN_OR_RETURN(Value k, eval(*e.args[i]));
          MOEPP_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1]));
          if (!k.is_string()) return eval_error(e.line, "dict keys must be strings");
          d.set(k.as_string(), v);
        }
        return d;
      }
      case Expr::Kind::kAttr: {
        MOEPP_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        return get_item(e, obj, Value(e.name));
      }
      case Expr::Kind::kIndex: {
        MOEPP_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        MOEPP_ASSIGN_OR_RETURN(Value key, eval(*e.args[1]));
        return get_item(e, obj, key);
      }
      case Expr::Kind::kSlice: return eval_slice(e);
      case Expr::Kind::kCall: return eval_call(e);
      case Expr::Kind::kFilter: {
        MOEPP_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        MOEPP_ASSIGN_OR_RETURN(std::vector<Value> args, eval_args(e));
        MOEPP_ASSIGN_OR_RETURN(auto kwargs, eval_kwargs(e));
        return apply_filter(e, e.name, input, args, kwargs);
      }
      case Expr::Kind::kTest: {
        MOEPP_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        MOEPP_ASSIGN_OR_RETURN(std::vector<Value> args, eval_args(e));
        MOEPP_ASSIGN_OR_RETURN(bool r, apply_test(e, e.name, input, args));
        return Value(r != e.negated);
      }
      case Expr::Kind::kUnary: {
        MOEPP_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number()) return eval_error(e.line, std::string("unary ") + e.name + " on a " + v.type_name());
        if (e.name == "+") return v;
        return v.type() == Value::Type::kInt ? Value(-v.as_int()) : Value(-v.as_float());
      }
      case Expr::Kind::kBinary: return eval_binary(e);
      case Expr::Kind::kTernary: {
        MOEPP_ASSIGN_OR_RETURN(Value c, eval(*e.args[1]));
        if (c.truthy()) return eval(*e.args[0]);
        if (e.args.size() > 2 && e.args[2]) return eval(*e.args[2]);
        return Value();
      }
    }
    return Value();
  }

  Result<std::vector<Value>> eval_args(const Expr& e) {
    std::vector<Value> out;
    for (size_t i = 1; i < e.args.size(); ++i) {
      MOEPP_ASSIGN_OR_RETURN(Value v, eval(*e.args[i]));
      out.push_back(v);
    }
    return out;
  }

  Result<std::map<std::string, Value>> eval_kwargs(const Expr& e) {
    std::map<std::string, Value> out;
    for (const auto& [k, x] : e.kwargs) {
      MOEPP_ASSIGN_OR_RETURN(Value v, eval(*x));
      out[k] = v;
    }
    return out;
  }

  Result<Value> get_item(const Expr& e, const Value& obj, const Value& key) {
    if (obj.is_undefined()) return eval_error(e.line, "'" + key.str() + "' of an undefined value");
    if (obj.is_dict()) {
      if (!key.is_string()) return Value();
      const Value* v = obj.get(key.as_string());
      return v ? *v : Value();
    }
    if ((obj.is_list() || obj.is_string()) && key.is_number()) {
      const int64_t n = obj.is_list() ? static_cast<int64_t>(obj.as_list().size()) : static_cast<int64_t>(obj.as_string().size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();  // Jinja: out of range is undefined
      if (obj.is_list()) return obj.as_list()[i];
      return Value(std::string(1, obj.as_string()[i]));
    }
    return Value();  // attributes Jinja would look up on Python objects: undefined here
  }

  Result<Value> eval_slice(const Expr& e) {
    MOEPP_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
    int64_t parts[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (!e.args[k + 1]) continue;
      MOEPP_ASSIGN_OR_RETURN(Value v, eval(*e.args[k + 1]));
      if (!v.is_number()) return eval_error(e.line, "slice indices must be integers");
      parts[k] = v.as_int();
      given[k] = true;
    }
    const int64_t step = parts[2];
    if (step == 0) return eval_error(e.line, "slice step cannot be zero");
    const bool is_list = obj.is_list();
    if (!is_list && !obj.is_string()) return eval_error(e.line, std::string("cannot slice a ") + obj.type_name());
    const int64_t n = is_list ? static_cast<int64_t>(obj.as_list().size()) : static_cast<int64_t>(obj.as_string().size());
    // Python's slice.indices().
    auto norm = [&](int64_t v, bool g, int64_t dflt) {
      if (!g) return dflt;
      if (v < 0) v += n;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    const int64_t start = norm(parts[0], given[0], step > 0 ? 0 : n - 1);
    const int64_t stop = norm(parts[1], given[1], step > 0 ? n : -1);
    Value::List items;
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (is_list) items.push_back(obj.as_list()[i]);
      else s += obj.as_string()[i];
    }
    return is_list ? Value::list(std::move(items)) : Value(s);
  }

  Result<Value> eval_binary(const Expr& e) {
    MOEPP_ASSIGN_OR_RETURN(Value a, eval(*e.args[0]));
    const std::string& op = e.name;
    if (op == "and") {
      if (!a.truthy()) return a;
      return eval(*e.args[1]);
    }
    if (op == "or") {
      if (a.truthy()) return a;
      return eval(*e.args[1]);
    }
    MOEPP_ASSIGN_OR_RETURN(Value b, eval(*e.args[1]));
    if (op == "==") return Value(a.equals(b));
    if (op == "!=") return Value(!a.equals(b));
    if (op == "~") return Value(a.str() + b.str());
    if (op == "in") {
      bool found = false;
      if (b.is_string() && a.is_string()) found = b.as_string().find(a.as_string()) != std::string::npos;
      else if (b.is_list()) found = std::any_of(b.as_list().begin(), b.as_list().end(), [&](const Value& x) { return x.equals(a); });
      else if (b.is_dict()) found = a.is_string() && b.get(a.as_string()) != nullptr;
      else if (!b.is_undefined()) return eval_error(e.line, std::string("'in' on a ") + b.type_name());
      return Value(found != e.negated);
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (a.is_number() && b.is_number()) c = a.as_float() < b.as_float() ? -1 : a.as_float() > b.as_float() ? 1 : 0;
      else if (a.is_string() && b.is_string()) c = a.as_string().compare(b.as_string());
      else return eval_error(e.line, "cannot compare a " + std::string(a.type_name()) + " with a " + b.type_name());
      return Value(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
      if (a.is_list() && b.is_list()) {
        Value::List items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        return Value::list(std::move(items));
      }
    }
    if (op == "*" && ((a.is_string() && b.type() == Value::Type::kInt) || (b.is_string() && a.type() == Value::Type::kInt))) {
      const std::string& s = a.is_string() ? a.as_string() : b.as_string();
      std::string r;
      for (int64_t i = 0, n = a.is_string() ? b.as_int() : a.as_int(); i < n; ++i) r += s;
      return Value(r);
    }
    if (!a.is_number() || !b.is_number())
      return eval_error(e.line, "unsupported operand types for " + op + ": " + a.type_name() + " and " + b.type_name());
    const bool ints = a.type() != Value::Type::kFloat && b.type() != Value::Type::kFloat;
    if (op == "+") return ints ? Value(a.as_int() + b.as_int()) : Value(a.as_float() + b.as_float());
    if (op == "-") return ints ? Value(a.as_int() - b.as_int()) : Value(a.as_float() - b.as_float());
    if (op == "*") return ints ? Value(a.as_int() * b.as_int()) : Value(a.as_float() * b.as_float());
    if (op == "**") return ints && b.as_int() >= 0 ? Value(static_cast<int64_t>(std::llround(std::pow(a.as_float(), b.as_float()))))
                                                   : Value(std::pow(a.as_float(), b.as_float()));
    if (b.as_float() == 0) return eval_error(e.line, "division by zero");
    if (op == "/") return Value(a.as_float() / b.as_float());
    if (op == "//") {
      if (ints) {
        int64_t q = a.as_int() / b.as_int();
        if ((a.as_int() % b.as_int() != 0) && ((a.as_int() < 0) != (b.as_int() < 0))) --q;
        return Value(q);
      }
      return Value(std::floor(a.as_float() / b.as_float()));
    }
    if (op == "%") {
      if (ints) {
        int64_t r = a.as_int() % b.as_int();
        if (r != 0 && ((r < 0) != (b.as_int() < 0))) r += b.as_int();
        return Value(r);
      }
      const double r = std::fmod(a.as_float(), b.as_float());
      return Value(r != 0 && ((r < 0) != (b.as_float() < 0)) ? r + b.as_float() : r);
    }
    return eval_error(e.line, "unsupported operator " + op);
  }

  Result<Value> eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    MOEPP_ASSIGN_OR_RETURN(std::vector<Value> args, eval_args(e));
    MOEPP_ASSIGN_OR_RETURN(auto kwargs, eval_kwargs(e));
    if (callee.kind == Expr::Kind::kAttr) {
      MOEPP_ASSIGN_OR_RETURN(Value obj, eval(*callee.args[0]));
      return call_method(e, obj, callee.name, args);
    }
    if (callee.kind != Expr::Kind::kName) return eval_error(e.line, "only functions and methods can be called");
    const std::string& f = callee.name;
    if (f == "raise_exception") return eval_error(e.line, "template raised: " + (args.empty() ? std::string() : args[0].str()));
    if (f == "namespace") {
      Value ns = Value::dict({}, /*is_namespace=*/true);
      for (const auto& [k, v] : kwargs) ns.set(k, v);
      return ns;
    }
    if (f == "range") {
      int64_t start = 0, stop = 0, step = 1;
      if (args.size() == 1) stop = args[0].as_int();
      else if (args.size() >= 2) { start = args[0].as_int(); stop = args[1].as_int(); }
      if (args.size() == 3) step = args[2].as_int();
      if (step == 0 || args.empty() || args.size() > 3) return eval_error(e.line, "range() takes 1 to 3 integers, step not 0");
      Value::List items;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        items.push_back(Value(i));
        if (items.size() > 1000000) return eval_error(e.line, "range() too long");
      }
      return Value::list(std::move(items));
    }
    if (f == "strftime_now") {
      const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[128];
      const std::string fmt = args.empty() ? "%Y-%m-%d" : args[0].str();
      std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      return Value(std::string(buf));
    }
    const Value* v = lookup(f);
    return eval_error(e.line, v ? "'" + f + "' is not callable" : "unknown function '" + f + "'");
  }

  Result<Value> call_method(const Expr& e, const Value& obj, const std::string& m, const std::vector<Value>& args) {
    auto arg_str = [&](size_t i, const std::string& dflt) { return i < args.size() && !args[i].is_none() ? args[i].str() : dflt; };
    if (obj.is_string()) {
      const std::string& s = obj.as_string();
      if (m == "startswith" || m == "endswith") {
        if (args.empty()) return eval_error(e.line, m + "() takes a string");
        std::vector<std::string> options;
        if (args[0].is_list()) for (const Value& x : args[0].as_list()) options.push_back(x.str());
        else options.push_back(args[0].str());
        for (const std::string& o : options) {
          if (m == "startswith" ? s.rfind(o, 0) == 0 : (s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0))
            return Value(true);
        }
        return Value(false);
      }
      if (m == "strip") return Value(strip_chars(s, arg_str(0, kWhitespace), true, true));
      if (m == "lstrip") return Value(strip_chars(s, arg_str(0, kWhitespace), true, false));
      if (m == "rstrip") return Value(strip_chars(s, arg_str(0, kWhitespace), false, true));
      if (m == "upper") return Value(to_upper(s));
      if (m == "lower") return Value(to_lower(s));
      if (m == "title" || m == "capitalize") return apply_filter(e, m, obj, {}, {});
      if (m == "replace") {
        if (args.size() < 2) return eval_error(e.line, "replace() takes two strings");
        return apply_filter(e, "replace", obj, args, {});
      }
      if (m == "find") {
        const size_t p = s.find(arg_str(0, ""));
        return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(p));
      }
      if (m == "count") {
        const std::string sub = arg_str(0, "");
        if (sub.empty()) return Value(static_cast<int64_t>(s.size() + 1));
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value(n);
      }
      if (m == "split") {
        Value::List parts;
        const int64_t maxsplit = args.size() > 1 ? args[1].as_int() : -1;
        if (args.empty() || args[0].is_none()) {  // split on runs of whitespace
          size_t i = 0;
          while (i < s.size()) {
            while (i < s.size() && kWhitespace.find(s[i]) != std::string::npos) ++i;
            if (i >= s.size()) break;
            size_t j = i;
            if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) j = s.size();
            else while (j < s.size() && kWhitespace.find(s[j]) == std::string::npos) ++j;
            parts.push_back(Value(s.substr(i, j - i)));
            i = j;
          }
        } else {
          const std::string sep = args[0].str();
          if (sep.empty()) return eval_error(e.line, "split() with an empty separator");
          size_t start = 0;
          for (size_t p = s.find(sep); p != std::string::npos; p = s.find(sep, start)) {
            if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) break;
            parts.push_back(Value(s.substr(start, p - start)));
            start = p + sep.size();
          }
          parts.push_back(Value(s.substr(start)));
        }
        return Value::list(std::move(parts));
      }
      if (m == "join") {
        if (args.empty() || !args[0].is_list()) return eval_error(e.line, "join() takes a list");
        std::string r;
        for (size_t i = 0; i < args[0].as_list().size(); ++i) r += (i ? s : "") + args[0].as_list()[i].str();
        return Value(r);
      }
    } else if (obj.is_dict()) {
      if (m == "items" || m == "keys" || m == "values") {
        Value::List out;
        for (const auto& [k, v] : obj.as_dict()) {
          if (m == "items") out.push_back(Value::list({Value(k), v}));
          else out.push_back(m == "keys" ? Value(k) : v);
        }
        return Value::list(std::move(out));
      }
      if (m == "get") {
        const Value* v = args.empty() ? nullptr : obj.get(args[0].str());
        return v ? *v : (args.size() > 1 ? args[1] : Value::none());
      }
    } else if (obj.is_list()) {
      if (m == "append") {
        if (args.size() != 1) return eval_error(e.line, "append() takes one value");
        obj.as_list().push_back(args[0]);
        return Value::none();
      }
      if (m == "index") {
        for (size_t i = 0; i < obj.as_list().size(); ++i)
          if (!args.empty() && obj.as_list()[i].equals(args[0])) return Value(static_cast<int64_t>(i));
        return eval_error(e.line, "index(): value not in list");
      }
    }
    return eval_error(e.line, std::string("unsupported method '") + m + "' on a " + obj.type_name());
  }

  Result<Value> apply_filter(const Expr& e, const std::string& f, const Value& v, const std::vector<Value>& args,
                             const std::map<std::string, Value>& kwargs) {
    auto kw = [&](const char* name, size_t pos) -> const Value* {
      auto it = kwargs.find(name);
      if (it != kwargs.end()) return &it->second;
      return pos < args.size() ? &args[pos] : nullptr;
    };
    if (f == "trim") return Value(strip_chars(v.str(), kWhitespace, true, true));
    if (f == "length" || f == "count") {
      if (v.is_string()) {  // characters, not bytes
        int64_t n = 0;
        for (unsigned char c : v.as_string()) n += (c & 0xC0) != 0x80;
        return Value(n);
      }
      if (v.is_list()) return Value(static_cast<int64_t>(v.as_list().size()));
      if (v.is_dict()) return Value(static_cast<int64_t>(v.as_dict().size()));
      return eval_error(e.line, std::string("length of a ") + v.type_name());
    }
    if (f == "tojson") {
      const Value* indent = kw("indent", 0);
      return Value(v.to_json(indent && indent->is_number() ? static_cast<int>(indent->as_int()) : -1));
    }
    if (f == "upper") return Value(to_upper(v.str()));
    if (f == "lower") return Value(to_lower(v.str()));
    if (f == "capitalize") {
      std::string s = to_lower(v.str());
      if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
      return Value(s);
    }
    if (f == "title") {
      std::string s = v.str();
      bool start = true;
      for (char& c : s) {
        const bool alpha = std::isalpha(static_cast<unsigned char>(c));
        c = static_cast<char>(start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
        start = !alpha;
      }
      return Value(s);
    }
    if (f == "string") return Value(v.str());
    if (f == "safe" || f == "e" || f == "escape") return v;  // no autoescaping in chat templates
    if (f == "int") return Value(v.is_string() ? static_cast<int64_t>(std::strtoll(v.as_string().c_str(), nullptr, 10)) : v.as_int());
    if (f == "float") return Value(v.is_string() ? std::strtod(v.as_string().c_str(), nullptr) : v.as_float());
    if (f == "abs") return v.type() == Value::Type::kInt ? Value(static_cast<int64_t>(std::llabs(v.as_int()))) : Value(std::fabs(v.as_float()));
    if (f == "list") {
      if (v.is_list()) return Value::list(v.as_list());
      if (v.is_string()) {
        Value::List out;
        for (char c : v.as_string()) out.push_back(Value(std::string(1, c)));
        return Value::list(std::move(out));
      }
      return call_method(e, v, "keys", {});
    }
    if (f == "first" || f == "last") {
      if (!v.is_list()) return eval_error(e.line, f + " of a " + v.type_name());
      if (v.as_list().empty()) return Value();
      return f == "first" ? v.as_list().front() : v.as_list().back();
    }
    if (f == "reverse") {
      if (v.is_string()) return Value(std::string(v.as_string().rbegin(), v.as_string().rend()));
      if (!v.is_list()) return eval_error(e.line, std::string("reverse of a ") + v.type_name());
      Value::List items(v.as_list().rbegin(), v.as_list().rend());
      return Value::list(std::move(items));
    }
    if (f == "join") {
      if (!v.is_list()) return eval_error(e.line, std::string("join of a ") + v.type_name());
      const Value* sep = kw("d", 0);
      return call_method(e, Value(sep ? sep->str() : ""), "join", {v});
    }
    if (f == "default" || f == "d") {
      const Value* dflt = kw("default_value", 0);
      const Value* boolean = kw("boolean", 1);
      const bool use_default = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
      return use_default ? (dflt ? *dflt : Value("")) : v;
    }
    if (f == "replace") {
      if (args.size() < 2) return eval_error(e.line, "replace takes two strings");
      std::string s = v.str();
      const std::string from = args[0].str(), to = args[1].str();
      if (from.empty()) return Value(s);
      std::string out;
      size_t start = 0;
      for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, start)) {
        out += s.substr(start, p - start) + to;
        start = p + from.size();
      }
      return Value(out + s.substr(start));
    }
    if (f == "items") return call_method(e, v, "items", {});
    if (f == "map" || f == "selectattr" || f == "rejectattr") {
      if (!v.is_list()) return eval_error(e.line, f + " of a " + v.type_name());
      Value::List out;
      if (f == "map") {
        const Value* attr = kw("attribute", 99);
        for (const Value& x : v.as_list()) {
          if (attr) {
            MOEPP_ASSIGN_OR_RETURN(Value got, get_item(e, x, *attr));
            out.push_back(got);
          } else {
            if (args.empty()) return eval_error(e.line, "map needs a filter name or attribute=");
            std::vector<Value> rest(args.begin() + 1, args.end());
            MOEPP_ASSIGN_OR_RETURN(Value got, apply_filter(e, args[0].str(), x, rest, {}));
            out.push_back(got);
          }
        }
      } else {
        if (args.empty()) return eval_error(e.line, f + " needs an attribute name");
        for (const Value& x : v.as_list()) {
          MOEPP_ASSIGN_OR_RETURN(Value attr_value, get_item(e, x, args[0]));
          bool ok = attr_value.truthy();
          if (args.size() > 1) {
            std::vector<Value> rest(args.begin() + 2, args.end());
            MOEPP_ASSIGN_OR_RETURN(ok, apply_test(e, args[1].str(), attr_value, rest));
          }
          if (ok == (f == "selectattr")) out.push_back(x);
        }
      }
      return Value::list(std::move(out));
    }
    return eval_error(e.line, "unsupported filter '" + f + "'");
  }

  Result<bool> apply_test(const Expr& e, const std::string& t, const Value& v, const std::vector<Value>& args) {
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.type() == Value::Type::kInt;
    if (t == "float") return v.type() == Value::Type::kFloat;
    if (t == "boolean") return v.type() == Value::Type::kBool;
    if (t == "true") return v.type() == Value::Type::kBool && v.as_bool();
    if (t == "false") return v.type() == Value::Type::kBool && !v.as_bool();
    if (t == "mapping") return v.is_dict();
    if (t == "sequence" || t == "iterable") return v.is_list() || v.is_string() || v.is_dict();
    if (t == "even" || t == "odd") return v.is_number() && (v.as_int() % 2 == 0) == (t == "even");
    if (t == "divisibleby") return !args.empty() && args[0].as_int() != 0 && v.as_int() % args[0].as_int() == 0;
    if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return !args.empty() && v.equals(args[0]);
    if (t == "ne" || t == "!=") return args.empty() || !v.equals(args[0]);
    if (t == "in") return !args.empty() && args[0].is_list() &&
                          std::any_of(args[0].as_list().begin(), args[0].as_list().end(), [&](const Value& x) { return x.equals(v); });
    return eval_error(e.line, "unsupported test '" + t + "'");
  }

  std::vector<Value> scopes_;  // innermost last; each a dict
};

}  // namespace

Template::Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

Result<Template> Template::parse(const std::string& source, bool trim_blocks, bool lstrip_blocks) {
  Template t;
  MOEPP_ASSIGN_OR_RETURN(t.root_, parse_template(source, trim_blocks, lstrip_blocks));
  return t;
}

Result<std::string> Template::render(const Value& context) const {
  Renderer r(context);
  std::string out;
  Flow flow = Flow::kNormal;
  MOEPP_RETURN_IF_ERROR(r.render(root_->body, &out, &flow));
  return out;
}

}  // namespace moepp::jinja
