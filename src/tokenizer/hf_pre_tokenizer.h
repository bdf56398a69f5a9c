// tokenizer.json "pre_tokenizer" graph: Sequence, Split, ByteLevel, Metaspace, Digits,
// Whitespace, WhitespaceSplit. Splits one normalized piece into the words the model sees.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/hf_json.h"

namespace moepp {

struct HfPiece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace "first")
};

class HfPreTokenizer {
 public:
  virtual ~HfPreTokenizer() = default;
  // Appends the pieces `in` splits into; empty pieces are dropped, as in HF.
  virtual void split(HfPiece&& in, std::vector<HfPiece>& out) const = 0;
};

// `obj.json()` is the pre_tokenizer object; null gives a null pointer.
Result<std::unique_ptr<HfPreTokenizer>> parse_hf_pre_tokenizer(const HfJsonObject& obj);

}  // namespace moepp
