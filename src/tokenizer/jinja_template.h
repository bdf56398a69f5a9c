// A Jinja2 subset, enough for the chat templates that Hugging Face tokenizer_config.json files
// carry (Llama-3, Mistral/Mixtral-Instruct, Qwen2/3, DeepSeek, ...): text, {{ }}, {% if %},
// {% for %} with loop.*, {% set %} incl. namespace attributes, break/continue, filters, tests,
// string/dict methods, slicing, whitespace control, and the trim_blocks / lstrip_blocks
// settings transformers uses. Anything else is refused at parse time with the line and the
// construct named. Written by hand: Debian has no Jinja2-compatible C++ library.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "tokenizer/jinja_value.h"

namespace moepp::jinja {

struct Node;

class Template {
 public:
  // trim_blocks / lstrip_blocks as in jinja2.Environment (transformers sets both).
  static Result<Template> parse(const std::string& source, bool trim_blocks = true, bool lstrip_blocks = true);
  // context: a dict of variables. Errors name the template line.
  Result<std::string> render(const Value& context) const;

  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

 private:
  Template();
  std::unique_ptr<Node> root_;
};

}  // namespace moepp::jinja
