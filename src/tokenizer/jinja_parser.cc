// Lexing (tags, whitespace control, trim_blocks / lstrip_blocks) and recursive-descent parsing
// of the Jinja subset into the tree of jinja_ast.h. Operator precedence follows Jinja2:
// ternary < or < and < not < comparisons/in/is < ~ < + - < * / // % < ** < unary - < filters
// < postfix (.attr, [index], call).
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_template.h"

namespace moepp::jinja {
namespace {

// ---------------------------------------------------------------------------------------------
// Template-level lexing: text and tags.

struct Segment {
  enum class Kind { kText, kVar, kBlock, kComment } kind;
  std::string text;  // text, or the tag's inner source
  int line;
  bool strip_left = false, strip_right = false, keep_left = false;
};

Status syntax_error(int line, const std::string& what) {
  return Status::Error("chat template: line " + std::to_string(line) + ": " + what);
}

Result<std::vector<Segment>> split_segments(const std::string& src, bool trim_blocks, bool lstrip_blocks) {
  std::vector<Segment> segs;
  size_t pos = 0;
  int line = 1;
  auto count_lines = [&](size_t a, size_t b) {
    for (size_t i = a; i < b; ++i) line += src[i] == '\n';
  };
  while (pos < src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open == std::string::npos || open + 1 >= src.size()) {
      segs.push_back({Segment::Kind::kText, src.substr(pos), line});
      count_lines(pos, src.size());
      break;
    }
    if (open > pos) segs.push_back({Segment::Kind::kText, src.substr(pos, open - pos), line});
    count_lines(pos, open);
    const char c = src[open + 1];
    const Segment::Kind kind = c == '{' ? Segment::Kind::kVar : c == '%' ? Segment::Kind::kBlock : Segment::Kind::kComment;
    const std::string close = c == '{' ? "}}" : c == '%' ? "%}" : "#}";
    size_t inner = open + 2;
    Segment seg{kind, "", line};
    if (inner < src.size() && src[inner] == '-') {
      seg.strip_left = true;
      ++inner;
    } else if (inner < src.size() && src[inner] == '+') {
      seg.keep_left = true;
      ++inner;
    }
    size_t end = src.find(close, inner);
    if (kind == Segment::Kind::kVar || kind == Segment::Kind::kBlock) {
      // A closing delimiter inside a string literal does not end the tag.
      end = std::string::npos;
      char quote = 0;
      for (size_t i = inner; i + 1 < src.size(); ++i) {
        if (quote) {
          if (src[i] == '\\') ++i;
          else if (src[i] == quote) quote = 0;
        } else if (src[i] == '\'' || src[i] == '"') {
          quote = src[i];
        } else if (src.compare(i, 2, close) == 0) {
          end = i;
          break;
        }
      }
    }
    if (end == std::string::npos) return syntax_error(line, "tag opened with '{" + std::string(1, c) + "' is never closed");
    size_t inner_end = end;
    if (inner_end > inner && src[inner_end - 1] == '-') {
      seg.strip_right = true;
      --inner_end;
    }
    seg.text = src.substr(inner, inner_end - inner);
    count_lines(open, end + 2);
    segs.push_back(std::move(seg));
    pos = end + 2;
  }

  // Whitespace control, as jinja2 applies it.
  for (size_t i = 0; i < segs.size(); ++i) {
    Segment& s = segs[i];
    if (s.kind == Segment::Kind::kText) continue;
    const bool block_like = s.kind != Segment::Kind::kVar;
    if (i > 0 && segs[i - 1].kind == Segment::Kind::kText) {
      std::string& prev = segs[i - 1].text;
      if (s.strip_left) {
        prev.erase(prev.find_last_not_of(" \t\r\n\f\v") + 1);
      } else if (block_like && lstrip_blocks && !s.keep_left) {
        const size_t nl = prev.find_last_of('\n');
        const size_t start = nl == std::string::npos ? 0 : nl + 1;
        const bool at_line_start = nl != std::string::npos || i == 1;
        if (at_line_start && prev.find_first_not_of(" \t", start) == std::string::npos) prev.erase(start);
      }
    }
    if (i + 1 < segs.size() && segs[i + 1].kind == Segment::Kind::kText) {
      std::string& next = segs[i + 1].text;
      if (s.strip_right) {
        const size_t keep = next.find_first_not_of(" \t\r\n\f\v");
        next.erase(0, keep == std::string::npos ? next.size() : keep);
      } else if (block_like && trim_blocks) {
        if (next.rfind("\r\n", 0) == 0) next.erase(0, 2);
        else if (next.rfind("\n", 0) == 0) next.erase(0, 1);
      }
    }
  }
  return segs;
}

// ---------------------------------------------------------------------------------------------
// Expression tokens.

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  Value value;
};

Result<std::vector<Token>> tokenize(const std::string& s, int line) {
  std::vector<Token> out;
  size_t i = 0;
  static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",",
                                     ":", "|", "~", "+", "-", "*", "/", "%", "<", ">", "="};
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Kind::kName, s.substr(i, j - i), {}});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      std::string num = s.substr(i, j - i);
      num.erase(std::remove(num.begin(), num.end(), '_'), num.end());
      Token t{is_float ? Token::Kind::kFloat : Token::Kind::kInt, num, {}};
      t.value = is_float ? Value(std::strtod(num.c_str(), nullptr)) : Value(static_cast<int64_t>(std::strtoll(num.c_str(), nullptr, 10)));
      out.push_back(std::move(t));
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          const char e = s[++j];
          switch (e) {
            case 'n': v += '\n'; break;
            case 't': v += '\t'; break;
            case 'r': v += '\r'; break;
            case '\\': v += '\\'; break;
            case '\'': v += '\''; break;
            case '"': v += '"'; break;
            default: v += '\\'; v += e;  // Python keeps unknown escapes as written
          }
        } else {
          v += s[j];
        }
      }
      if (j >= s.size()) return syntax_error(line, "unterminated string literal");
      out.push_back({Token::Kind::kString, s.substr(i, j + 1 - i), Value(v)});
      i = j + 1;
    } else {
      bool matched = false;
      for (const char* op : kOps) {
        const size_t n = std::char_traits<char>::length(op);
        if (s.compare(i, n, op) == 0) {
          out.push_back({Token::Kind::kOp, op, {}});
          i += n;
          matched = true;
          break;
        }
      }
      if (!matched) return syntax_error(line, std::string("unexpected character '") + c + "'");
    }
  }
  out.push_back({Token::Kind::kEnd, "", {}});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Expression parser.

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : t_(std::move(tokens)), line_(line) {}

  bool at_end() const { return t_[p_].kind == Token::Kind::kEnd; }
  bool peek_name(const char* n) const { return t_[p_].kind == Token::Kind::kName && t_[p_].text == n; }
  bool peek_op(const char* o) const { return t_[p_].kind == Token::Kind::kOp && t_[p_].text == o; }
  bool accept_name(const char* n) { return peek_name(n) ? (++p_, true) : false; }
  bool accept_op(const char* o) { return peek_op(o) ? (++p_, true) : false; }
  Status expect_op(const char* o) {
    if (accept_op(o)) return Status::Ok();
    return syntax_error(line_, std::string("expected '") + o + "', got '" + t_[p_].text + "'");
  }
  Result<std::string> name() {
    if (t_[p_].kind != Token::Kind::kName) return syntax_error(line_, "expected a name, got '" + t_[p_].text + "'");
    return t_[p_++].text;
  }
  Status expect_end() {
    if (at_end()) return Status::Ok();
    return syntax_error(line_, "unexpected '" + t_[p_].text + "'");
  }

  Result<ExprPtr> expression() {  // ternary
    MOEPP_ASSIGN_OR_RETURN(ExprPtr value, or_expr());
    if (!accept_name("if")) return value;
    MOEPP_ASSIGN_OR_RETURN(ExprPtr cond, or_expr());
    ExprPtr other;
    if (accept_name("else")) {
      MOEPP_ASSIGN_OR_RETURN(other, expression());
    }
    return make(Expr::Kind::kTernary, "", std::move(value), std::move(cond), std::move(other));
  }

  // "a or b" without the ternary, for "for x in y if cond".
  Result<ExprPtr> or_expr() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, and_expr());
    while (accept_name("or")) {
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, and_expr());
      left = make(Expr::Kind::kBinary, "or", std::move(left), std::move(right));
    }
    return left;
  }

 private:
  ExprPtr make(Expr::Kind kind, std::string name, ExprPtr a = nullptr, ExprPtr b = nullptr, ExprPtr c = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    e->name = std::move(name);
    if (a || b || c) e->args.push_back(std::move(a));
    if (b || c) e->args.push_back(std::move(b));
    if (c) e->args.push_back(std::move(c));
    return e;
  }

  Result<ExprPtr> and_expr() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, not_expr());
    while (accept_name("and")) {
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, not_expr());
      left = make(Expr::Kind::kBinary, "and", std::move(left), std::move(right));
    }
    return left;
  }

  Result<ExprPtr> not_expr() {
    if (accept_name("not")) {
      MOEPP_ASSIGN_OR_RETURN(ExprPtr inner, not_expr());
      return make(Expr::Kind::kUnary, "not", std::move(inner));
    }
    return comparison();
  }

  Result<ExprPtr> comparison() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, concat());
    for (;;) {
      static const char* const kCmp[] = {"==", "!=", "<=", ">=", "<", ">"};
      bool done = true;
      for (const char* op : kCmp) {
        if (accept_op(op)) {
          MOEPP_ASSIGN_OR_RETURN(ExprPtr right, concat());
          left = make(Expr::Kind::kBinary, op, std::move(left), std::move(right));
          done = false;
          break;
        }
      }
      if (!done) continue;
      if (peek_name("in") || (peek_name("not") && t_[p_ + 1].kind == Token::Kind::kName && t_[p_ + 1].text == "in")) {
        const bool neg = accept_name("not");
        ++p_;
        MOEPP_ASSIGN_OR_RETURN(ExprPtr right, concat());
        left = make(Expr::Kind::kBinary, "in", std::move(left), std::move(right));
        left->negated = neg;
        continue;
      }
      if (accept_name("is")) {
        const bool neg = accept_name("not");
        MOEPP_ASSIGN_OR_RETURN(std::string test, name());
        ExprPtr e = make(Expr::Kind::kTest, test, std::move(left));
        e->negated = neg;
        // A test may take one argument without parentheses ("is divisibleby 3") or with them.
        if (accept_op("(")) {
          MOEPP_RETURN_IF_ERROR(call_args(e.get()));
        } else if (t_[p_].kind == Token::Kind::kString || t_[p_].kind == Token::Kind::kInt) {
          MOEPP_ASSIGN_OR_RETURN(ExprPtr arg, primary());
          e->args.push_back(std::move(arg));
        }
        left = std::move(e);
        continue;
      }
      return left;
    }
  }

  Result<ExprPtr> concat() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, additive());
    while (accept_op("~")) {
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, additive());
      left = make(Expr::Kind::kBinary, "~", std::move(left), std::move(right));
    }
    return left;
  }

  Result<ExprPtr> additive() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, multiplicative());
    for (;;) {
      const char* op = peek_op("+") ? "+" : peek_op("-") ? "-" : nullptr;
      if (op == nullptr) return left;
      ++p_;
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, multiplicative());
      left = make(Expr::Kind::kBinary, op, std::move(left), std::move(right));
    }
  }

  Result<ExprPtr> multiplicative() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, power());
    for (;;) {
      const char* op = peek_op("//") ? "//" : peek_op("*") ? "*" : peek_op("/") ? "/" : peek_op("%") ? "%" : nullptr;
      if (op == nullptr) return left;
      ++p_;
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, power());
      left = make(Expr::Kind::kBinary, op, std::move(left), std::move(right));
    }
  }

  Result<ExprPtr> power() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr left, unary());
    while (accept_op("**")) {
      MOEPP_ASSIGN_OR_RETURN(ExprPtr right, unary());
      left = make(Expr::Kind::kBinary, "**", std::move(left), std::move(right));
    }
    return left;
  }

  Result<ExprPtr> unary() {
    if (peek_op("-") || peek_op("+")) {
      const std::string op = t_[p_++].text;
      MOEPP_ASSIGN_OR_RETURN(ExprPtr inner, unary());
      return make(Expr::Kind::kUnary, op, std::move(inner));
    }
    return filtered();
  }

  Result<ExprPtr> filtered() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr value, postfix());
    while (accept_op("|")) {
      MOEPP_ASSIGN_OR_RETURN(std::string filter, name());
      ExprPtr e = make(Expr::Kind::kFilter, filter, std::move(value));
      if (accept_op("(")) MOEPP_RETURN_IF_ERROR(call_args(e.get()));
      value = std::move(e);
    }
    return value;
  }

  // Parses "a, b, k=v)" after "(" into e->args (appended) and e->kwargs.
  Status call_args(Expr* e) {
    while (!accept_op(")")) {
      if (t_[p_].kind == Token::Kind::kName && t_[p_ + 1].kind == Token::Kind::kOp && t_[p_ + 1].text == "=") {
        std::string key = t_[p_].text;
        p_ += 2;
        MOEPP_ASSIGN_OR_RETURN(ExprPtr v, expression());
        e->kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        MOEPP_ASSIGN_OR_RETURN(ExprPtr v, expression());
        e->args.push_back(std::move(v));
      }
      if (!peek_op(")")) MOEPP_RETURN_IF_ERROR(expect_op(","));
      if (at_end()) return syntax_error(line_, "unclosed '('");
    }
    return Status::Ok();
  }

  Result<ExprPtr> postfix() {
    MOEPP_ASSIGN_OR_RETURN(ExprPtr value, primary());
    for (;;) {
      if (accept_op(".")) {
        MOEPP_ASSIGN_OR_RETURN(std::string attr, name());
        value = make(Expr::Kind::kAttr, attr, std::move(value));
      } else if (accept_op("[")) {
        ExprPtr parts[3];
        int n_colons = 0;
        for (;;) {
          if (peek_op(":")) {
            ++p_;
            if (++n_colons > 2) return syntax_error(line_, "too many ':' in a slice");
            continue;
          }
          if (peek_op("]")) break;
          MOEPP_ASSIGN_OR_RETURN(parts[n_colons], expression());
        }
        ++p_;  // ]
        if (n_colons == 0) {
          if (!parts[0]) return syntax_error(line_, "empty subscript");
          value = make(Expr::Kind::kIndex, "", std::move(value), std::move(parts[0]));
        } else {
          auto e = std::make_unique<Expr>();
          e->kind = Expr::Kind::kSlice;
          e->line = line_;
          e->args.push_back(std::move(value));
          for (auto& part : parts) e->args.push_back(std::move(part));
          value = std::move(e);
        }
      } else if (accept_op("(")) {
        ExprPtr e = make(Expr::Kind::kCall, "", std::move(value));
        MOEPP_RETURN_IF_ERROR(call_args(e.get()));
        value = std::move(e);
      } else {
        return value;
      }
    }
  }

  Result<ExprPtr> primary() {
    const Token& t = t_[p_];
    switch (t.kind) {
      case Token::Kind::kString: {
        // Adjacent string literals concatenate, as in Python.
        std::string s;
        while (t_[p_].kind == Token::Kind::kString) s += t_[p_++].value.as_string();
        auto e = make(Expr::Kind::kLiteral, "");
        e->literal = Value(s);
        return e;
      }
      case Token::Kind::kInt:
      case Token::Kind::kFloat: {
        auto e = make(Expr::Kind::kLiteral, "");
        e->literal = t.value;
        ++p_;
        return e;
      }
      case Token::Kind::kName: {
        ++p_;
        auto e = make(Expr::Kind::kLiteral, "");
        if (t.text == "true" || t.text == "True") e->literal = Value(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::none();
        else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::kOp:
        if (accept_op("(")) {
          MOEPP_ASSIGN_OR_RETURN(ExprPtr inner, expression());
          if (peek_op(",")) return syntax_error(line_, "tuples are not supported");
          MOEPP_RETURN_IF_ERROR(expect_op(")"));
          return inner;
        }
        if (accept_op("[")) {
          ExprPtr e = make(Expr::Kind::kList, "");
          while (!accept_op("]")) {
            MOEPP_ASSIGN_OR_RETURN(ExprPtr item, expression());
            e->args.push_back(std::move(item));
            if (!peek_op("]")) MOEPP_RETURN_IF_ERROR(expect_op(","));
            if (at_end()) return syntax_error(line_, "unclosed '['");
          }
          return e;
        }
        if (accept_op("{")) {
          ExprPtr e = make(Expr::Kind::kDict, "");
          while (!accept_op("}")) {
            MOEPP_ASSIGN_OR_RETURN(ExprPtr key, expression());
            MOEPP_RETURN_IF_ERROR(expect_op(":"));
            MOEPP_ASSIGN_OR_RETURN(ExprPtr v, expression());
            e->args.push_back(std::move(key));
            e->args.push_back(std::move(v));
            if (!peek_op("}")) MOEPP_RETURN_IF_ERROR(expect_op(","));
            if (at_end()) return syntax_error(line_, "unclosed '{'");
          }
          return e;
        }
        [[fallthrough]];
      default:
        return syntax_error(line_, t.kind == Token::Kind::kEnd ? "expression expected" : "unexpected '" + t.text + "'");
    }
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  int line_;
};

// ---------------------------------------------------------------------------------------------
// Statement parser.

class Parser {
 public:
  explicit Parser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  Result<NodePtr> parse_root() {
    auto root = std::make_unique<Node>();
    root->kind = Node::Kind::kRoot;
    std::string stop;
    MOEPP_RETURN_IF_ERROR(parse_body(&root->body, {}, &stop));
    return root;
  }

 private:
  // Parses nodes until a block tag whose first word is in `stops` (returned in *stop, with
  // its parser positioned after the keyword) or the end.
  Status parse_body(Body* body, const std::vector<std::string>& stops, std::string* stop) {
    while (i_ < segs_.size()) {
      const Segment& s = segs_[i_++];
      switch (s.kind) {
        case Segment::Kind::kText:
          if (!s.text.empty()) {
            auto n = std::make_unique<Node>();
            n->kind = Node::Kind::kText;
            n->text = s.text;
            n->line = s.line;
            body->push_back(std::move(n));
          }
          break;
        case Segment::Kind::kComment: break;
        case Segment::Kind::kVar: {
          MOEPP_ASSIGN_OR_RETURN(std::vector<Token> toks, tokenize(s.text, s.line));
          ExprParser p(std::move(toks), s.line);
          auto n = std::make_unique<Node>();
          n->kind = Node::Kind::kOutput;
          n->line = s.line;
          MOEPP_ASSIGN_OR_RETURN(n->expr, p.expression());
          MOEPP_RETURN_IF_ERROR(p.expect_end());
          body->push_back(std::move(n));
          break;
        }
        case Segment::Kind::kBlock: {
          MOEPP_ASSIGN_OR_RETURN(std::vector<Token> toks, tokenize(s.text, s.line));
          if (toks[0].kind != Token::Kind::kName) return syntax_error(s.line, "expected a statement name in {% %}");
          const std::string keyword = toks[0].text;
          for (const std::string& st : stops) {
            if (keyword == st) {
              *stop = keyword;
              current_ = std::make_unique<ExprParser>(std::vector<Token>(toks.begin() + 1, toks.end()), s.line);
              return Status::Ok();
            }
          }
          ExprParser p(std::vector<Token>(toks.begin() + 1, toks.end()), s.line);
          MOEPP_RETURN_IF_ERROR(parse_statement(keyword, p, s.line, body));
          break;
        }
      }
    }
    if (!stops.empty()) {
      const int line = segs_.empty() ? 1 : segs_.back().line;
      return syntax_error(line, "missing {% " + stops.back() + " %}");
    }
    return Status::Ok();
  }

  Status parse_statement(const std::string& keyword, ExprParser& p, int line, Body* body) {
    auto n = std::make_unique<Node>();
    n->line = line;
    if (keyword == "if") {
      n->kind = Node::Kind::kIf;
      MOEPP_ASSIGN_OR_RETURN(ExprPtr cond, p.expression());
      MOEPP_RETURN_IF_ERROR(p.expect_end());
      for (;;) {
        Body branch;
        std::string stop;
        MOEPP_RETURN_IF_ERROR(parse_body(&branch, {"elif", "else", "endif"}, &stop));
        n->branches.emplace_back(std::move(cond), std::move(branch));
        if (stop == "endif") break;
        if (stop == "elif") {
          MOEPP_ASSIGN_OR_RETURN(cond, current_->expression());
        } else {
          cond = nullptr;
          Body else_body;
          MOEPP_RETURN_IF_ERROR(current_->expect_end());
          MOEPP_RETURN_IF_ERROR(parse_body(&else_body, {"endif"}, &stop));
          n->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        MOEPP_RETURN_IF_ERROR(current_->expect_end());
      }
      MOEPP_RETURN_IF_ERROR(current_->expect_end());
    } else if (keyword == "for") {
      n->kind = Node::Kind::kFor;
      do {
        MOEPP_ASSIGN_OR_RETURN(std::string var, p.name());
        n->vars.push_back(var);
      } while (p.accept_op(","));
      if (!p.accept_name("in")) return syntax_error(line, "expected 'in' in a for loop");
      MOEPP_ASSIGN_OR_RETURN(n->expr, p.or_expr());
      if (p.accept_name("if")) {
        MOEPP_ASSIGN_OR_RETURN(n->filter, p.or_expr());
      }
      if (p.peek_name("recursive")) return syntax_error(line, "unsupported construct 'recursive' loops");
      MOEPP_RETURN_IF_ERROR(p.expect_end());
      std::string stop;
      MOEPP_RETURN_IF_ERROR(parse_body(&n->body, {"else", "endfor"}, &stop));
      MOEPP_RETURN_IF_ERROR(current_->expect_end());
      if (stop == "else") {
        MOEPP_RETURN_IF_ERROR(parse_body(&n->else_body, {"endfor"}, &stop));
        MOEPP_RETURN_IF_ERROR(current_->expect_end());
      }
    } else if (keyword == "set") {
      n->kind = Node::Kind::kSet;
      MOEPP_ASSIGN_OR_RETURN(std::string target, p.name());
      n->vars.push_back(target);
      if (p.accept_op(".")) {
        MOEPP_ASSIGN_OR_RETURN(std::string attr, p.name());
        n->vars.push_back(attr);
      }
      if (!p.accept_op("=")) return syntax_error(line, "unsupported construct: block {% set %} (expected '=')");
      MOEPP_ASSIGN_OR_RETURN(n->expr, p.expression());
      MOEPP_RETURN_IF_ERROR(p.expect_end());
    } else if (keyword == "break" || keyword == "continue") {
      n->kind = keyword == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      MOEPP_RETURN_IF_ERROR(p.expect_end());
    } else if (keyword == "generation") {
      // transformers' AssistantTracker extension: renders its body unchanged.
      std::string stop;
      MOEPP_RETURN_IF_ERROR(parse_body(body, {"endgeneration"}, &stop));
      return Status::Ok();
    } else {
      return syntax_error(line, "unsupported construct '{% " + keyword + " %}'");
    }
    body->push_back(std::move(n));
    return Status::Ok();
  }

  std::vector<Segment> segs_;
  size_t i_ = 0;
  std::unique_ptr<ExprParser> current_;  // the parser of the tag that ended the last body
};

}  // namespace

Result<NodePtr> parse_template(const std::string& source, bool trim_blocks, bool lstrip_blocks) {
  MOEPP_ASSIGN_OR_RETURN(std::vector<Segment> segs, split_segments(source, trim_blocks, lstrip_blocks));
  Parser parser(std::move(segs));
  return parser.parse_root();
}

}  // namespace moepp::jinja
