// Text <-> token ids for every supported model: one interface over the SentencePiece
// `tokenizer.model` backend and the Hugging Face `tokenizer.json` backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace moepp {

struct EncodeOptions {
  bool add_special = true;  // BOS/EOS as the tokenizer's config says (add_bos_token, post_processor)
  // Recognise added/special tokens spelled in the text (HF does; SentencePiece alone does not).
  bool parse_special = true;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const = 0;
  // Decoded text; invalid UTF-8 from byte tokens becomes U+FFFD as the reference does.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special) const = 0;
  // The token's piece as stored in the vocabulary (e.g. "▁the", "<0x0A>", "Ġthe").
  virtual std::string piece(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  // Id of a token spelled exactly `text` (special or normal), -1 if none.
  virtual int32_t token_to_id(std::string_view text) const = 0;
  virtual const char* kind() const = 0;  // "sentencepiece" or "tokenizer.json"
};

// Finds the tokenizer of a model directory (tokenizer.json preferred, then tokenizer.model),
// or opens a tokenizer.json / tokenizer.model file directly. tokenizer_config.json and
// special_tokens_map.json next to it are honoured.
Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& dir_or_file);

}  // namespace moepp
