// UTF-8 validation shared by the parsers (safetensors headers, JSON, tokenizers).
#pragma once

#include <string_view>

namespace moepp {

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace moepp
