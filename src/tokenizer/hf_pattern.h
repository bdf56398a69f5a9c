// The {"String": ...} / {"Regex": ...} pattern object shared by tokenizer.json's Split
// pre-tokenizer and Replace normalizer/decoder.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/hf_json.h"
#include "tokenizer/hf_regex.h"

namespace moepp {

struct HfPattern {
  std::string literal;             // used when regex is null
  std::unique_ptr<HfRegex> regex;  // set for {"Regex": ...}

  // Non-overlapping matches as [start, end) byte offsets, in order.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  // Every match replaced by `content` (no group references, as in HF).
  std::string replace_all(std::string_view text, std::string_view content) const;
};

// Reads obj[key] as a pattern object.
Result<HfPattern> parse_hf_pattern(const HfJsonObject& obj, const char* key);

}  // namespace moepp
