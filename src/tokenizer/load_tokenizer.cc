// load_tokenizer: picks the backend for a model directory or a tokenizer file and reads the
// tokenizer_config.json / special_tokens_map.json beside it.
#include <filesystem>

#include "tokenizer/backends.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace moepp {
namespace {

bool is_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& dir_or_file) {
  if (is_dir(dir_or_file)) {
    const std::string& dir = dir_or_file;
    const std::string json_path = dir + "/tokenizer.json";
    const std::string model_path = dir + "/tokenizer.model";
    const bool has_json = is_file(json_path), has_model = is_file(model_path);
    if (!has_json && !has_model)
      return Status::Error(dir + ": tokenizer: expected tokenizer.json or tokenizer.model in the directory, got neither");
    MOEPP_ASSIGN_OR_RETURN(TokenizerConfig config, read_tokenizer_config(dir));
    if (has_json) return load_hf_tokenizer(json_path, config);
    return load_sentencepiece_tokenizer(model_path, config);
  }
  if (!is_file(dir_or_file))
    return Status::Error(dir_or_file + ": tokenizer: expected a model directory or a tokenizer file (.json, .model, "
                         ".tiktoken), got a path that does not exist");
  MOEPP_ASSIGN_OR_RETURN(TokenizerConfig config, read_tokenizer_config(parent_dir(dir_or_file)));
  if (ends_with(dir_or_file, ".json")) return load_hf_tokenizer(dir_or_file, config);
  if (ends_with(dir_or_file, ".model")) return load_sentencepiece_tokenizer(dir_or_file, config);
  if (ends_with(dir_or_file, ".tiktoken")) return load_tiktoken_tokenizer(dir_or_file);
  return Status::Error(dir_or_file + ": tokenizer: expected a file named *.json (Hugging Face tokenizer.json), "
                       "*.model (SentencePiece) or *.tiktoken, got another name");
}

}  // namespace moepp
