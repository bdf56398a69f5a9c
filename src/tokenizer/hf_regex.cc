// PCRE2 wrapper for the tokenizer regexes: UTF + UCP mode, JIT with a per-thread stack big
// enough for long whitespace runs, non-overlapping find-all.
#include "tokenizer/hf_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/hf_unicode.h"

namespace moepp {

std::string translate_regex_for_pcre2(const std::string& pattern) {
  // White_Space = \t..\r, U+0085 and the Z categories (Zs, Zl, Zp).
  static const char kSpaceItems[] = "\\t-\\r\\x{85}\\p{Z}";
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      if (n == 's') {
        out += in_class ? std::string(kSpaceItems) : "[" + std::string(kSpaceItems) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kSpaceItems) + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal in both syntaxes.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // POSIX class [:alpha:] inside a class: copy through its closing ":]".
      const size_t end = pattern.find(":]", i + 2);
      if (end != std::string::npos) {
        out.append(pattern, i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Result<std::unique_ptr<HfRegex>> HfRegex::compile(const std::string& pattern, const std::string& where) {
  const std::string translated = translate_regex_for_pcre2(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    return Status::Error(where + ": expected a regex PCRE2 can compile, got \"" + pattern + "\" (" +
                         reinterpret_cast<const char*>(buffer) + " at offset " + std::to_string(error_offset) + ")");
  }
  std::unique_ptr<HfRegex> re(new HfRegex());
  re->code_ = code;
  re->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return re;
}

HfRegex::~HfRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

namespace {

// One JIT stack and match context per thread: the default 32 KiB machine stack overflows on
// patterns like \s+(?!\S) over long whitespace runs.
struct ThreadMatchState {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (context != nullptr && stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    if (stack != nullptr) pcre2_jit_stack_free(stack);
    if (context != nullptr) pcre2_match_context_free(context);
  }
};

}  // namespace

void HfRegex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local ThreadMatchState state;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (md == nullptr) return;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  uint32_t flags = 0;
  while (pos <= text.size()) {
    const uint32_t options = flags | PCRE2_NO_UTF_CHECK;
    int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, options, md, state.context)
                  : pcre2_match(code, subject, text.size(), pos, options, md, state.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking on the heap
      rc = pcre2_match(code, subject, text.size(), pos, options | PCRE2_NO_JIT, md, state.context);
    if (rc < 0) {
      if (rc == PCRE2_ERROR_NOMATCH && flags != 0 && pos < text.size()) {
        // An empty match was followed by no non-empty one here: step one character on.
        pos += utf8_char_len(static_cast<uint8_t>(text[pos]));
        flags = 0;
        continue;
      }
      // A resource limit on pathological input: the rest becomes one match, so no text is ever
      // dropped (tiktoken encodes only matches).
      if (rc != PCRE2_ERROR_NOMATCH && pos < text.size()) out.emplace_back(pos, text.size());
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (end < start) break;  // \K tricks; not used by tokenizers
    out.emplace_back(start, end);
    pos = end;
    flags = start == end ? PCRE2_NOTEMPTY_ATSTART : 0;
    if (start == end && pos >= text.size()) break;
  }
  pcre2_match_data_free(md);
}

}  // namespace moepp
