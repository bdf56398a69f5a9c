// File reading and id-list parsing with "where: what, expected, got" errors.
#include "eval/token_input.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace moepp {

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::vector<int32_t>> parse_id_list(const std::string& text, const std::string& where) {
  std::vector<int32_t> ids;
  size_t i = 0;
  auto sep = [](char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < text.size()) {
    while (i < text.size() && sep(text[i])) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !sep(text[j])) ++j;
    const std::string item = text.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
      return Status::Error(where + ": expected non-negative token ids separated by commas or spaces, got '" + item + "'");
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  if (ids.empty()) return Status::Error(where + ": expected at least one token id, got none");
  return ids;
}

Result<std::vector<int32_t>> load_token_input(const TokenInput& in, const Tokenizer* tok) {
  const int given = !in.text_file.empty() + !in.ids.empty() + !in.ids_file.empty();
  if (given != 1)
    return Status::Error(str_format("input: expected exactly one of -f TEXT, --ids LIST, --ids-file FILE, got %d", given));
  if (!in.ids.empty()) return parse_id_list(in.ids, "--ids");
  if (!in.ids_file.empty()) {
    MOEPP_ASSIGN_OR_RETURN(std::string text, read_text_file(in.ids_file));
    return parse_id_list(text, in.ids_file);
  }
  if (tok == nullptr) return Status::Error("-f: the model has no tokenizer; give --ids or --ids-file instead");
  MOEPP_ASSIGN_OR_RETURN(std::string text, read_text_file(in.text_file));
  EncodeOptions eo;
  eo.add_special = !in.no_bos;
  eo.parse_special = false;
  std::vector<int32_t> ids = tok->encode(text, eo);
  if (ids.empty()) return Status::Error(in.text_file + ": expected some text, got none");
  return ids;
}

}  // namespace moepp
