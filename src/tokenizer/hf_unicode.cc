// UTF-8 repair, character classes (via utf8proc) and the GPT-2 byte-to-character table.
#include "tokenizer/hf_unicode.h"

#include <array>

#include <utf8proc.h>

namespace moepp {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Number of bytes of the (possibly truncated) sequence at s[i] that form a valid prefix, and the
// full length the lead byte asks for. Follows Unicode's table 3-7 of well-formed sequences.
void utf8_prefix(std::string_view s, size_t i, size_t* valid, size_t* need) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) { *valid = 1; *need = 1; return; }
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    *need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    *need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    *need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *valid = 0; *need = 1; return;  // continuation byte, C0, C1, F5..FF: never a lead
  }
  size_t k = 1;
  while (k < *need && i + k < s.size()) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
    ++k;
  }
  *valid = k;
}

}  // namespace

size_t utf8_valid_len(std::string_view s, size_t i) {
  size_t valid = 0, need = 0;
  utf8_prefix(s, i, &valid, &need);
  return valid == need ? need : 0;
}

std::string utf8_lossy(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t valid = 0, need = 0;
    utf8_prefix(s, i, &valid, &need);
    if (valid == need) {
      out.append(s.data() + i, need);
      i += need;
    } else {
      out.append("\xEF\xBF\xBD");
      i += valid == 0 ? 1 : valid;  // a maximal subpart is replaced by one U+FFFD
    }
  }
  return out;
}

bool unicode_is_whitespace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return true;
  if (c < 0x80) return false;
  if (c == 0x85) return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool unicode_is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool unicode_is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  switch (cat) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

namespace {

struct ByteLevelTables {
  std::array<std::string, 256> to_char;
  std::array<char32_t, 256> code_point;
  ByteLevelTables() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      code_point[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(to_char[b], code_point[b]);
    }
  }
};

const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables;
  return tables;
}

}  // namespace

const std::string& byte_level_char(uint8_t b) { return byte_level_tables().to_char[b]; }

int byte_level_byte(char32_t c) {
  // Stand-ins are either the byte itself (printable Latin-1) or U+0100..U+0143.
  if (c >= 256 && c < 256 + 68) {
    static const auto inverse = [] {
      std::array<int, 68> inv{};
      const auto& t = byte_level_tables();
      for (int b = 0; b < 256; ++b)
        if (t.code_point[b] >= 256) inv[t.code_point[b] - 256] = b;
      return inv;
    }();
    return inverse[c - 256];
  }
  if (c < 256 && byte_level_tables().code_point[c] == c) return static_cast<int>(c);
  return -1;
}

}  // namespace moepp
