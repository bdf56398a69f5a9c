// Streaming detokenization: the pieces emitted token by token concatenate to the full decode,
// and no piece ends inside a character (no U+FFFD for text that is valid UTF-8).
#include <gtest/gtest.h>

#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace moepp {
namespace {

const char* const kTexts[] = {
    "Hello world, how are you?",
    "Emoji 🌍🚀 and CJK 你好世界, accents é à ü, math ∑∫",
    "  leading spaces\n\nnew lines\ttabs",
    "🤖",
};

void check(const std::string& path) {
  auto tok = load_tokenizer(path);
  ASSERT_TRUE(tok.ok()) << tok.status().message() << " (run scripts/fetch-tokenizer-assets.sh)";
  for (const char* text : kTexts) {
    EncodeOptions eo;
    eo.add_special = false;
    const std::vector<int32_t> ids = (*tok)->encode(text, eo);
    StreamDecoder stream(**tok, true);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << path << ": partial character emitted for " << text;
      streamed += piece;
    }
    streamed += stream.flush();
    EXPECT_EQ(streamed, (*tok)->decode(ids, true)) << path;
    EXPECT_EQ(streamed, text) << path;
  }
}

TEST(StreamDecoder, SentencePieceByteFallback) {
  check(std::string(MOEPP_TOKENIZER_ASSETS) + "/sentencepiece/llama-tokenizer.model");
}
TEST(StreamDecoder, TokenizerJsonByteFallback) {
  check(std::string(MOEPP_TOKENIZER_ASSETS) + "/hf/mistral-7b-v0.1_mixtral-8x7b/tokenizer.json");
}
TEST(StreamDecoder, ByteLevelBpe) { check(std::string(MOEPP_TOKENIZER_ASSETS) + "/hf/qwen3/tokenizer.json"); }

}  // namespace
}  // namespace moepp
