#include "eval/ffn_text.h"

#include <cstdio>

namespace moepp {
namespace {

// Background colours from "almost no FFN work" to "nearly full": green, cyan, yellow.
const char* color_for(double ffn, int top_k) {
  const double share = top_k > 0 ? ffn / top_k : 1.0;
  if (share < 0.25) return "\x1b[42;30m";
  if (share < 0.5) return "\x1b[46;30m";
  return "\x1b[43;30m";
}

}  // namespace

std::string render_ffn_text(const std::vector<std::string>& token_texts, const std::vector<double>& ffn_per_token,
                            int top_k, bool color) {
  std::string out;
  for (size_t i = 0; i < token_texts.size() && i < ffn_per_token.size(); ++i) {
    const std::string& text = token_texts[i];
    const double ffn = ffn_per_token[i];
    // Full FFN use (half, without colour), or a token that made no text final (inside a UTF-8
    // character): unmarked.
    const double limit = color ? top_k - 1e-9 : 0.5 * top_k + 1e-9;
    if (text.empty() || (color ? ffn >= limit : ffn > limit)) {
      out += text;
      continue;
    }
    if (color) {
      out += color_for(ffn, top_k);
      out += text;
      out += "\x1b[0m";
    } else {
      char mark[32];
      std::snprintf(mark, sizeof mark, "]%.1f", ffn);
      out += "[" + text + mark;
    }
  }
  return out;
}

std::string ffn_text_legend(int top_k, bool color) {
  char line[320];
  if (color)
    std::snprintf(line, sizeof line,
                  "FFN experts per token, mean over layers (of %d): \x1b[42;30m under %.1f \x1b[0m "
                  "\x1b[46;30m under %.1f \x1b[0m \x1b[43;30m under %d \x1b[0m, unmarked: all %d",
                  top_k, 0.25 * top_k, 0.5 * top_k, top_k, top_k);
  else
    std::snprintf(line, sizeof line,
                  "[text]F: the token used only F FFN experts per layer on average (of %d; its other slots went "
                  "to zero-computation experts); unmarked tokens used more than %.1f",
                  top_k, 0.5 * top_k);
  return line;
}

}  // namespace moepp
