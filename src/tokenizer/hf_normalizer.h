// tokenizer.json "normalizer" graph: Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD,
// Lowercase, Strip, StripAccents.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/hf_json.h"

namespace moepp {

class HfNormalizer {
 public:
  virtual ~HfNormalizer() = default;
  // `s` is valid UTF-8 and stays so.
  virtual void normalize(std::string& s) const = 0;
};

// `obj.json()` is the normalizer object; null gives a null pointer (no normalizer).
Result<std::unique_ptr<HfNormalizer>> parse_hf_normalizer(const HfJsonObject& obj);

}  // namespace moepp
