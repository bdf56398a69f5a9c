// Pre-tokenizer regexes (tokenizer.json Split patterns, tiktoken split patterns) on PCRE2,
// with the pattern translated so that its meaning matches Oniguruma / Rust regex.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace moepp {

class HfRegex {
 public:
  // `pattern` in Oniguruma / Rust syntax; `where` prefixes the error ("tokenizer.json: ...").
  static Result<std::unique_ptr<HfRegex>> compile(const std::string& pattern, const std::string& where);
  ~HfRegex();
  HfRegex(const HfRegex&) = delete;
  HfRegex& operator=(const HfRegex&) = delete;

  // Appends [start, end) byte offsets of the successive non-overlapping matches in `text`,
  // which must be valid UTF-8. Thread-safe.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  HfRegex() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// The PCRE2 spelling of an Oniguruma / Rust pattern: \s and \S become explicit Unicode
// White_Space classes (PCRE2's UCP \s lacks U+0085). Exposed for tests.
std::string translate_regex_for_pcre2(const std::string& pattern);

}  // namespace moepp
