// Inputs of the evaluation commands: a text file, or token ids given inline or in a file (for
// models without a tokenizer, such as the tiny test checkpoints).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "tokenizer/tokenizer.h"

namespace moepp {

Result<std::string> read_text_file(const std::string& path);
// Ids separated by commas and/or whitespace; `where` names the flag or file in errors.
Result<std::vector<int32_t>> parse_id_list(const std::string& text, const std::string& where);

struct TokenInput {
  std::string text_file;  // -f: encoded with the model's tokenizer
  std::string ids;        // --ids: "1,2,3"
  std::string ids_file;   // --ids-file: ids separated by commas or whitespace
  bool no_bos = false;    // text: do not add the tokenizer's BOS
  bool has_text() const { return !text_file.empty(); }
};

// Exactly one source must be given; text needs `tokenizer` (null: error naming the model).
Result<std::vector<int32_t>> load_token_input(const TokenInput& input, const Tokenizer* tokenizer);

}  // namespace moepp
