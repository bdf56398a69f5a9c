// Chat templates as transformers applies them: the Jinja source from tokenizer_config.json,
// rendered with messages, add_generation_prompt, the special token texts and extra variables.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "tokenizer/jinja_template.h"
#include "tokenizer/tokenizer_config.h"

namespace moepp {

class ChatTemplate {
 public:
  // Fails with the line and construct when the template uses Jinja this engine lacks.
  static Result<ChatTemplate> create(const std::string& source, const TokenizerConfig& config);

  // messages: [{"role": ..., "content": ...}, ...]; extra: more template variables (tools, ...).
  // ordered_json keeps keys in document order, which tojson output depends on.
  // The result is meant to be encoded without adding BOS again (the template writes it).
  Result<std::string> apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                            const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

 private:
  ChatTemplate(jinja::Template t, TokenizerConfig config) : template_(std::move(t)), config_(std::move(config)) {}
  jinja::Template template_;
  TokenizerConfig config_;
};

}  // namespace moepp
