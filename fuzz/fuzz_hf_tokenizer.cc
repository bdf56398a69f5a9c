// libFuzzer target: the tokenizer.json and tiktoken backends. The first byte picks the mode:
// 0-3 run the rest as text through real tokenizers (Mistral, Llama 3, Qwen3, cl100k_base) and
// check that lossless ones round-trip; 4+ parse the rest as a tokenizer.json and use it.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/backends.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/hf_unicode.h"
#include "tokenizer/tiktoken_tokenizer.h"

namespace {

std::unique_ptr<moepp::Tokenizer> load_or_die(moepp::Result<std::unique_ptr<moepp::Tokenizer>> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "fuzz_hf_tokenizer: %s (run scripts/fetch-tokenizer-assets.sh)\n", r.status().message().c_str());
    std::abort();
  }
  return std::move(r).value();
}

struct Tokenizers {
  std::unique_ptr<moepp::Tokenizer> mistral, llama3, qwen3, cl100k;
  Tokenizers() {
    const std::string a = MOEPP_TOKENIZER_ASSETS;
    moepp::TokenizerConfig mistral_config;
    mistral_config.add_bos_token = true;
    mistral_config.bos_token = "<s>";
    mistral = load_or_die(moepp::load_hf_tokenizer(a + "/hf/mistral-7b-v0.1_mixtral-8x7b/tokenizer.json", mistral_config));
    llama3 = load_or_die(moepp::load_hf_tokenizer(a + "/hf/llama3/tokenizer.json", moepp::TokenizerConfig{}));
    qwen3 = load_or_die(moepp::load_hf_tokenizer(a + "/hf/qwen3/tokenizer.json", moepp::TokenizerConfig{}));
    cl100k = load_or_die(moepp::load_tiktoken_tokenizer(a + "/tiktoken/cl100k_base.tiktoken"));
  }
};

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_hf_tokenizer: property failed: %s\n", what);
  std::abort();
}

void exercise(const moepp::Tokenizer& tok, std::string_view text) {
  for (bool parse_special : {true, false}) {
    const auto ids = tok.encode(text, moepp::EncodeOptions{true, parse_special});
    for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "ids within the vocabulary");
    (void)tok.decode(ids, true);
    (void)tok.decode(ids, false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const Tokenizers toks;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const moepp::EncodeOptions plain{false, false};
  switch (data[0]) {
    case 0: {
      exercise(*toks.mistral, rest);
      // Legacy Prepend+Replace and the Strip decoder are lossless unless the text has a "▁".
      const std::string fixed = moepp::utf8_lossy(rest);
      if (fixed.find("\xE2\x96\x81") == std::string::npos)
        check(toks.mistral->decode(toks.mistral->encode(rest, plain), true) == fixed, "mistral round trip");
      return 0;
    }
    case 1:
      exercise(*toks.llama3, rest);
      check(toks.llama3->decode(toks.llama3->encode(rest, plain), false) == moepp::utf8_lossy(rest), "llama3 round trip");
      return 0;
    case 2:
      exercise(*toks.qwen3, rest);  // NFC: not byte-exact on round trip
      return 0;
    case 3:
      exercise(*toks.cl100k, rest);
      check(toks.cl100k->decode(toks.cl100k->encode(rest, plain), false) == moepp::utf8_lossy(rest), "cl100k round trip");
      return 0;
    default: {
      auto r = moepp::parse_hf_tokenizer(rest, "fuzz.tokenizer.json", moepp::TokenizerConfig{});
      if (!r.ok()) return 0;
      exercise(*r.value(), "Hello  world\n\n<x> 123 caf\xC3\xA9 \xF0\x9F\xA6\x99 \xFF");
      return 0;
    }
  }
}
