// OpenAI tiktoken encodings (.tiktoken files: "base64(token bytes) rank" per line) with the
// split regex and special tokens of r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tokenizer/tokenizer.h"

namespace moepp {

// load_tiktoken_tokenizer(path) (backends.h) takes the encoding name from the file's stem; this
// names it explicitly (p50k_edit shares p50k_base's file).
Result<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const std::string& path, const std::string& encoding_name);

// From the file's text already in memory; `name` labels errors.
Result<std::unique_ptr<Tokenizer>> parse_tiktoken_tokenizer(std::string_view text, const std::string& name,
                                                            const std::string& encoding_name);

}  // namespace moepp
