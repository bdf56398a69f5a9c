// UTF-8 and Unicode helpers shared by the tokenizer.json and tiktoken backends: decoding,
// lossy repair the way Rust's from_utf8_lossy does it, character classes, GPT-2's byte map.
#pragma once

#include "base/utf8.h"  // is_valid_utf8

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moepp {

// Decodes the code point at s[i] of a string already known to be valid UTF-8; sets *len.
inline char32_t utf8_decode_valid(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) { *len = 1; return b0; }
  if (b0 < 0xE0) { *len = 2; return ((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3Fu); }
  if (b0 < 0xF0) {
    *len = 3;
    return ((b0 & 0x0Fu) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 6) |
           (static_cast<uint8_t>(s[i + 2]) & 0x3Fu);
  }
  *len = 4;
  return ((b0 & 0x07u) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 12) |
         ((static_cast<uint8_t>(s[i + 2]) & 0x3Fu) << 6) | (static_cast<uint8_t>(s[i + 3]) & 0x3Fu);
}

inline size_t utf8_char_len(uint8_t lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

void append_utf8(std::string& out, char32_t cp);

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
size_t utf8_valid_len(std::string_view s, size_t i);
// Invalid input becomes U+FFFD per maximal invalid subpart (Rust String::from_utf8_lossy,
// Python's errors="replace"); valid input is returned unchanged.
std::string utf8_lossy(std::string_view s);

// Unicode White_Space (Rust char::is_whitespace, Oniguruma's and Rust regex's \s).
bool unicode_is_whitespace(char32_t c);
// Rust char::is_alphanumeric: Alphabetic or Numeric (approximated by categories L*, Nl, Nd, No).
bool unicode_is_alphanumeric(char32_t c);
// Rust char::is_numeric: categories Nd, Nl, No.
bool unicode_is_numeric(char32_t c);

// GPT-2 bytes_to_unicode: byte -> the UTF-8 spelling of its stand-in character.
const std::string& byte_level_char(uint8_t b);
// Inverse: a code point -> its byte, or -1 if the code point is not one of the 256 stand-ins.
int byte_level_byte(char32_t c);

}  // namespace moepp
