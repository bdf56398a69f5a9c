// The Hugging Face tokenizer.json backend: normalizer -> added tokens -> pre-tokenizer -> BPE
// -> post-processor, and the decoder chain back. Built by load_hf_tokenizer (backends.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace moepp {

// Same declaration as in backends.h.
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& json_path, const TokenizerConfig& config);

// Parses tokenizer.json text already in memory; `name` labels errors (used by tests and fuzzing).
Result<std::unique_ptr<Tokenizer>> parse_hf_tokenizer(std::string_view json_text, const std::string& name,
                                                      const TokenizerConfig& config);

}  // namespace moepp
