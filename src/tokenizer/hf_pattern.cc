// String / Regex patterns of tokenizer.json.
#include "tokenizer/hf_pattern.h"

namespace moepp {

void HfPattern::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  if (regex != nullptr) {
    regex->find_all(text, out);
    return;
  }
  if (literal.empty()) return;
  size_t pos = 0;
  while ((pos = text.find(literal, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + literal.size());
    pos += literal.size();
  }
}

std::string HfPattern::replace_all(std::string_view text, std::string_view content) const {
  std::vector<std::pair<size_t, size_t>> matches;
  find_all(text, matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    out.append(text.substr(prev, s - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

Result<HfPattern> parse_hf_pattern(const HfJsonObject& obj, const char* key) {
  const Json* p = obj.find(key);
  const std::string where = obj.field(key);
  if (p == nullptr || !p->is_object() || p->size() != 1)
    return obj.error(where, "an object {\"String\": ...} or {\"Regex\": ...}", p == nullptr ? Json() : *p);
  HfPattern pattern;
  if (auto it = p->find("String"); it != p->end()) {
    if (!it->is_string()) return obj.error(where + ".String", "a string", *it);
    pattern.literal = it->get<std::string>();
    return pattern;
  }
  if (auto it = p->find("Regex"); it != p->end()) {
    if (!it->is_string()) return obj.error(where + ".Regex", "a string", *it);
    MOEPP_ASSIGN_OR_RETURN(pattern.regex, HfRegex::compile(it->get<std::string>(), obj.file() + ": " + where + ".Regex"));
    return pattern;
  }
  return obj.error(where, "an object {\"String\": ...} or {\"Regex\": ...}", *p);
}

}  // namespace moepp
