// Incremental detokenization for streaming: each new token yields the text it completes,
// holding back a partial UTF-8 character (or byte-fallback bytes) until it is whole.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace moepp {

class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special) : tokenizer_(tokenizer), skip_special_(skip_special) {}

  // Text made final by `id` ("" while it ends inside a character).
  std::string push(int32_t id);
  // Whatever is still held back (at the end of generation).
  std::string flush();

 private:
  std::string decode_from(size_t begin, size_t end) const;

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  // Decoding restarts at prefix_ so that context-dependent rules (SentencePiece's leading
  // space, byte-level merges) see the same prefix twice; text up to read_ is already out.
  size_t prefix_ = 0;
  size_t read_ = 0;
};

}  // namespace moepp
