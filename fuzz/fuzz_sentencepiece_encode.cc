// libFuzzer target: arbitrary bytes through the SentencePiece backend (LLaMA tokenizer.model):
// encode (fast BPE and libsentencepiece must agree id for id), decode, legacy and non-legacy.
// The model path: $MOEPP_TOKENIZER_ASSETS/sentencepiece/llama-tokenizer.model, else the
// compiled-in MOEPP_TOKENIZER_ASSETS (scripts/fetch-tokenizer-assets.sh).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/sentencepiece_tokenizer.h"

namespace {

struct Tokenizers {
  std::unique_ptr<moepp::SentencePieceTokenizer> fast, lib, fast_nonlegacy, lib_nonlegacy;
};

std::unique_ptr<moepp::SentencePieceTokenizer> open_or_die(const std::string& path, bool legacy, bool fast) {
  moepp::TokenizerConfig config;
  config.legacy = legacy;
  auto r = moepp::SentencePieceTokenizer::open(path, config, fast);
  if (!r.ok()) {
    std::fprintf(stderr, "fuzz_sentencepiece_encode: %s (run scripts/fetch-tokenizer-assets.sh)\n",
                 r.status().message().c_str());
    std::abort();
  }
  if (fast && !r.value()->uses_fast_bpe()) {
    std::fprintf(stderr, "fuzz_sentencepiece_encode: fast BPE unavailable: %s\n",
                 r.value()->fast_bpe_unavailable_reason().c_str());
    std::abort();
  }
  return std::move(r).value();
}

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    const char* env = std::getenv("MOEPP_TOKENIZER_ASSETS");
    const std::string path = std::string(env != nullptr ? env : MOEPP_TOKENIZER_ASSETS) +
                             "/sentencepiece/llama-tokenizer.model";
    return Tokenizers{open_or_die(path, true, true), open_or_die(path, true, false), open_or_die(path, false, true),
                      open_or_die(path, false, false)};
  }();
  return t;
}

void check_pair(const moepp::SentencePieceTokenizer& fast, const moepp::SentencePieceTokenizer& lib,
                std::string_view text) {
  for (bool parse_special : {false, true}) {
    const moepp::EncodeOptions options{.add_special = true, .parse_special = parse_special};
    const std::vector<int32_t> a = fast.encode(text, options);
    const std::vector<int32_t> b = lib.encode(text, options);
    if (a != b) {
      std::fprintf(stderr, "fast BPE and libsentencepiece disagree (%zu vs %zu ids)\n", a.size(), b.size());
      std::abort();
    }
    for (int32_t id : a)
      if (id < 0 || id >= fast.vocab_size()) std::abort();
    (void)fast.decode(a, true);
    (void)fast.decode(a, false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = tokenizers();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_pair(*t.fast, *t.lib, text);
  check_pair(*t.fast_nonlegacy, *t.lib_nonlegacy, text);
  // Decoding arbitrary ids (in and out of range) must not crash either.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= size && ids.size() < 512; i += 2) ids.push_back(static_cast<int16_t>(data[i] | data[i + 1] << 8));
  (void)t.fast->decode(ids, false);
  (void)t.fast->decode(ids, true);
  return 0;
}
