// The variables transformers passes to a chat template (apply_chat_template).
#include "tokenizer/chat_template.h"

namespace moepp {

Result<ChatTemplate> ChatTemplate::create(const std::string& source, const TokenizerConfig& config) {
  // transformers compiles templates with trim_blocks=True, lstrip_blocks=True.
  MOEPP_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::parse(source, true, true));
  return ChatTemplate(std::move(t), config);
}

Result<std::string> ChatTemplate::apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                        const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) return Status::Error("messages: expected a JSON array of {\"role\", \"content\"} objects");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return Status::Error("messages[" + std::to_string(i) + "]: expected an object with a string \"role\"");
  }
  jinja::Value context = jinja::Value::from_json(extra.is_object() ? extra : nlohmann::ordered_json::object());
  context.set("messages", jinja::Value::from_json(messages));
  context.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  context.set("bos_token", jinja::Value(config_.bos_token));
  context.set("eos_token", jinja::Value(config_.eos_token));
  context.set("unk_token", jinja::Value(config_.unk_token));
  context.set("pad_token", jinja::Value(config_.pad_token));
  return template_.render(context);
}

}  // namespace moepp
