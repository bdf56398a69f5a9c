// read_tokenizer_config: tokenizer_config.json + special_tokens_map.json (+ the older
// added_tokens.json and the newer chat_template.jinja) into one TokenizerConfig.
#include "tokenizer/tokenizer_config.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "platform/mapped_file.h"

namespace moepp {
namespace {

using json = nlohmann::json;

bool is_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

Result<std::string> read_text(const std::string& path) {
  MOEPP_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  if (file->size() == 0) return std::string();
  return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

// Parses without exceptions; a missing file gives a null json.
Result<json> read_json_file(const std::string& path) {
  if (!is_file(path)) return json();
  MOEPP_ASSIGN_OR_RETURN(std::string text, read_text(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(path + ": expected valid JSON, got a parse error");
  if (!j.is_object()) return Status::Error(path + ": expected a JSON object, got " + std::string(j.type_name()));
  return j;
}

Status type_error(const std::string& file, const std::string& field, const char* expected, const json& got) {
  return Status::Error(file + ": " + field + ": expected " + expected + ", got " + got.type_name());
}

// add_bos_token & co: absent -> unset. An explicit null reaches HF as None, which is falsy
// where the flag is tested (build_inputs_with_special_tokens), so it reads as false.
Status read_flag(const json& j, const std::string& file, const char* field, std::optional<bool>* out,
                 bool null_is_false) {
  auto it = j.find(field);
  if (it == j.end()) return Status::Ok();
  if (it->is_null()) {
    if (null_is_false) *out = false;
    return Status::Ok();
  }
  if (!it->is_boolean()) return type_error(file, field, "a boolean", *it);
  *out = it->get<bool>();
  return Status::Ok();
}

// A special token is a string, an AddedToken object {"content": ...} (maybe with "__type"),
// or null (none). Leaves `out` alone when absent or null.
Status read_token_text(const json& j, const std::string& file, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (it->is_object()) {
    auto c = it->find("content");
    if (c == it->end() || !c->is_string())
      return type_error(file, std::string(field) + ".content", "a string",
                        c == it->end() ? json() : *c);
    *out = c->get<std::string>();
    return Status::Ok();
  }
  return type_error(file, field, "a string or an object with \"content\"", *it);
}

Status read_bool_field(const json& obj, const std::string& file, const std::string& where, const char* field,
                       bool* out) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return type_error(file, where + "." + field, "a boolean", *it);
  *out = it->get<bool>();
  return Status::Ok();
}

bool parse_token_id(const std::string& key, int32_t* id) {
  if (key.empty() || key.size() > 10) return false;
  for (char c : key)
    if (c < '0' || c > '9') return false;
  const long long v = std::strtoll(key.c_str(), nullptr, 10);
  if (v > INT32_MAX) return false;
  *id = static_cast<int32_t>(v);
  return true;
}

Status read_added_tokens_decoder(const json& j, const std::string& file, TokenizerConfig* config) {
  auto it = j.find("added_tokens_decoder");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return type_error(file, "added_tokens_decoder", "an object {id: token}", *it);
  for (auto e = it->begin(); e != it->end(); ++e) {
    const std::string where = "added_tokens_decoder[\"" + e.key() + "\"]";
    int32_t id = 0;
    if (!parse_token_id(e.key(), &id))
      return Status::Error(file + ": " + where + ": expected a non-negative 32-bit token id as the key, got '" +
                           e.key() + "'");
    if (!e->is_object()) return type_error(file, where, "an object", *e);
    AddedTokenSpec spec;
    auto c = e->find("content");
    if (c == e->end() || !c->is_string())
      return type_error(file, where + ".content", "a string", c == e->end() ? json() : *c);
    spec.content = c->get<std::string>();
    if (spec.content.empty()) return Status::Error(file + ": " + where + ".content: expected a non-empty string, got \"\"");
    MOEPP_RETURN_IF_ERROR(read_bool_field(*e, file, where, "special", &spec.special));
    MOEPP_RETURN_IF_ERROR(read_bool_field(*e, file, where, "lstrip", &spec.lstrip));
    MOEPP_RETURN_IF_ERROR(read_bool_field(*e, file, where, "rstrip", &spec.rstrip));
    MOEPP_RETURN_IF_ERROR(read_bool_field(*e, file, where, "single_word", &spec.single_word));
    MOEPP_RETURN_IF_ERROR(read_bool_field(*e, file, where, "normalized", &spec.normalized));
    config->added_tokens_decoder[id] = std::move(spec);
  }
  return Status::Ok();
}

// chat_template: a string, or a list of {name, template} of which "default" is used (HF
// needs an explicit name for the others; "" then).
Status read_chat_template(const json& j, const std::string& file, std::string* out) {
  auto it = j.find("chat_template");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (!it->is_array()) return type_error(file, "chat_template", "a string or a list of {name, template}", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string where = "chat_template[" + std::to_string(i) + "]";
    if (!t.is_object()) return type_error(file, where, "an object {name, template}", t);
    auto name = t.find("name");
    auto tmpl = t.find("template");
    if (name == t.end() || !name->is_string())
      return type_error(file, where + ".name", "a string", name == t.end() ? json() : *name);
    if (tmpl == t.end() || !tmpl->is_string())
      return type_error(file, where + ".template", "a string", tmpl == t.end() ? json() : *tmpl);
    if (name->get<std::string>() == "default") *out = tmpl->get<std::string>();
  }
  return Status::Ok();
}

Status read_special_token_texts(const json& j, const std::string& file, TokenizerConfig* config, bool fill_only) {
  struct Field {
    const char* name;
    std::string* text;
  };
  const Field fields[] = {{"bos_token", &config->bos_token},
                          {"eos_token", &config->eos_token},
                          {"unk_token", &config->unk_token},
                          {"pad_token", &config->pad_token}};
  for (const Field& f : fields) {
    if (fill_only && !f.text->empty()) continue;
    MOEPP_RETURN_IF_ERROR(read_token_text(j, file, f.name, f.text));
  }
  return Status::Ok();
}

// added_tokens.json (transformers < 4.34): {"content": id}; special when it spells one of the
// special tokens or additional_special_tokens.
Status read_legacy_added_tokens(const std::string& dir, const json& special_lists, TokenizerConfig* config) {
  const std::string file = dir + "/added_tokens.json";
  MOEPP_ASSIGN_OR_RETURN(json j, read_json_file(file));
  if (j.is_null()) return Status::Ok();
  for (auto e = j.begin(); e != j.end(); ++e) {
    if (!e->is_number_integer() || e->get<int64_t>() < 0 || e->get<int64_t>() > INT32_MAX)
      return type_error(file, "\"" + e.key() + "\"", "a non-negative 32-bit token id", *e);
    if (e.key().empty()) return Status::Error(file + ": \"\": expected a non-empty token text, got \"\"");
    AddedTokenSpec spec;
    spec.content = e.key();
    spec.special = e.key() == config->bos_token || e.key() == config->eos_token ||
                   e.key() == config->unk_token || e.key() == config->pad_token;
    for (const json& s : special_lists)
      if (s.is_string() && s.get<std::string>() == e.key()) spec.special = true;
    config->added_tokens_decoder.emplace(static_cast<int32_t>(e->get<int64_t>()), std::move(spec));
  }
  return Status::Ok();
}

Status read_additional_special(const json& j, const std::string& file, json* out) {
  auto it = j.find("additional_special_tokens");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return type_error(file, "additional_special_tokens", "a list", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    if (t.is_string()) {
      out->push_back(t);
    } else if (t.is_object() && t.contains("content") && t["content"].is_string()) {
      out->push_back(t["content"]);
    } else {
      return type_error(file, "additional_special_tokens[" + std::to_string(i) + "]",
                        "a string or an object with \"content\"", t);
    }
  }
  return Status::Ok();
}

}  // namespace

Result<TokenizerConfig> read_tokenizer_config(const std::string& dir) {
  TokenizerConfig config;
  const std::string config_file = dir + "/tokenizer_config.json";
  const std::string map_file = dir + "/special_tokens_map.json";
  MOEPP_ASSIGN_OR_RETURN(json tc, read_json_file(config_file));
  MOEPP_ASSIGN_OR_RETURN(json sm, read_json_file(map_file));
  json additional = json::array();
  if (!tc.is_null()) {
    MOEPP_RETURN_IF_ERROR(read_flag(tc, config_file, "add_bos_token", &config.add_bos_token, true));
    MOEPP_RETURN_IF_ERROR(read_flag(tc, config_file, "add_eos_token", &config.add_eos_token, true));
    MOEPP_RETURN_IF_ERROR(read_flag(tc, config_file, "legacy", &config.legacy, false));
    MOEPP_RETURN_IF_ERROR(read_special_token_texts(tc, config_file, &config, false));
    MOEPP_RETURN_IF_ERROR(read_added_tokens_decoder(tc, config_file, &config));
    MOEPP_RETURN_IF_ERROR(read_chat_template(tc, config_file, &config.chat_template));
    MOEPP_RETURN_IF_ERROR(read_additional_special(tc, config_file, &additional));
    auto cls = tc.find("tokenizer_class");
    if (cls != tc.end() && !cls->is_null()) {
      if (!cls->is_string()) return type_error(config_file, "tokenizer_class", "a string", *cls);
      config.tokenizer_class = cls->get<std::string>();
    }
  }
  if (!sm.is_null()) {
    MOEPP_RETURN_IF_ERROR(read_special_token_texts(sm, map_file, &config, true));
    MOEPP_RETURN_IF_ERROR(read_additional_special(sm, map_file, &additional));
  }
  if (config.added_tokens_decoder.empty())
    MOEPP_RETURN_IF_ERROR(read_legacy_added_tokens(dir, additional, &config));
  // Newer transformers save the template beside the config, and prefer that file.
  const std::string jinja_file = dir + "/chat_template.jinja";
  if (is_file(jinja_file)) {
    MOEPP_ASSIGN_OR_RETURN(config.chat_template, read_text(jinja_file));
  }
  return config;
}

}  // namespace moepp
