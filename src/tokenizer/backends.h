// The tokenizer backends' factories, for load_tokenizer. Each backend defines its own in its
// .cc file; keep this header to declarations only.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace moepp {

// A Hugging Face tokenizer.json (src/tokenizer/hf_*.cc).
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& json_path, const TokenizerConfig& config);

// A SentencePiece tokenizer.model (src/tokenizer/sentencepiece_tokenizer.cc).
Result<std::unique_ptr<Tokenizer>> load_sentencepiece_tokenizer(const std::string& model_path,
                                                                const TokenizerConfig& config);

// An OpenAI tiktoken file (r50k_base, p50k_base, cl100k_base, o200k_base, named by the file's
// stem; src/tokenizer/tiktoken_tokenizer.cc).
Result<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const std::string& path);

}  // namespace moepp
