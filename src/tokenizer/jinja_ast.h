// Syntax tree of the Jinja subset, shared by the parser and the renderer.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tokenizer/jinja_value.h"

namespace moepp::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // args = items
    kDict,     // args = k0, v0, k1, v1, ...
    kAttr,     // args[0].name
    kIndex,    // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // name in {"not", "-", "+"}; args[0]
    kBinary,   // args[0] name args[1]; name in {+ - * / // % ** ~ == != < > <= >= in and or}
    kTernary,  // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind = Kind::kLiteral;
  int line = 1;
  Value literal;
  std::string name;
  bool negated = false;  // "is not", "not in"
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { kRoot, kText, kOutput, kIf, kFor, kSet, kBreak, kContinue };
  Kind kind = Kind::kText;
  int line = 1;
  std::string text;                                  // kText
  ExprPtr expr;                                      // kOutput, kSet value, kFor iterable
  std::vector<std::pair<ExprPtr, Body>> branches;    // kIf: (condition or null for else, body)
  std::vector<std::string> vars;                     // kFor loop variables, kSet target (name[, attr])
  ExprPtr filter;                                    // kFor: "for x in y if cond"
  Body body;                                         // kRoot, kFor
  Body else_body;                                    // kFor: runs when the iterable is empty
};

// Parses a template (jinja_parser.cc); errors name the line and the construct.
Result<NodePtr> parse_template(const std::string& source, bool trim_blocks, bool lstrip_blocks);

}  // namespace moepp::jinja
