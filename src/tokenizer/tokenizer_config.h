// tokenizer_config.json + special_tokens_map.json: the Hugging Face settings around a
// tokenizer (BOS/EOS insertion, legacy spacing, added tokens, the chat template).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/status.h"

namespace moepp {

struct AddedTokenSpec {
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

struct TokenizerConfig {
  std::optional<bool> add_bos_token;  // unset: the backend's default
  std::optional<bool> add_eos_token;
  std::optional<bool> legacy;
  std::string bos_token, eos_token, unk_token, pad_token;  // token text, "" if not given
  std::map<int32_t, AddedTokenSpec> added_tokens_decoder;  // id -> token
  std::string chat_template;  // Jinja source, "" if none (a named list picks "default")
  std::string tokenizer_class;
};

// Reads both files from `dir` (each optional: a missing file gives defaults; a malformed one
// gives an error naming the file and field).
Result<TokenizerConfig> read_tokenizer_config(const std::string& dir);

}  // namespace moepp
