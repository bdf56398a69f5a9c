// SentencePiece backend, tokenizer_config.json reading and load_tokenizer: the LLaMA model
// against llama-tokenizer-js's vectors and SentencePiece's own ids (make_spm_golden.py),
// corrupt models and configs, and the config flags' effect on encode.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace moepp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

const std::string kAssets = MOEPP_TOKENIZER_ASSETS;
const std::string kData = MOEPP_TOKENIZER_TEST_DATA;
const std::string kLlamaModel = kAssets + "/sentencepiece/llama-tokenizer.model";
const std::string kAlbertModel = kAssets + "/sentencepiece/albert-30k-clean.model";

#define REQUIRE_ASSETS()                                                                              \
  do {                                                                                                \
    if (!fs::is_regular_file(kLlamaModel))                                                            \
      GTEST_FAIL() << "tokenizer assets missing (" << kLlamaModel                                     \
                   << "): run scripts/fetch-tokenizer-assets.sh, or point -DMOEPP_TOKENIZER_ASSETS " \
                      "at its output";                                                               \
  } while (0)

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh directory under the temp dir, removed at scope end.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = (fs::temp_directory_path() /
             ("moepp_sp_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++)))
                .string();
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, std::string_view bytes) const { write_file(file(name), bytes); }
  void copy_llama_model() const { fs::copy_file(kLlamaModel, file("tokenizer.model")); }

 private:
  std::string path_;
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string show(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

Ids to_ids(const json& j) { return j.get<Ids>(); }

const SentencePieceTokenizer& llama() {
  static std::unique_ptr<SentencePieceTokenizer> t = [] {
    auto r = SentencePieceTokenizer::open(kLlamaModel, TokenizerConfig{});
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      std::abort();
    }
    return std::move(r).value();
  }();
  return *t;
}

std::unique_ptr<SentencePieceTokenizer> llama_with(const TokenizerConfig& config) {
  auto r = SentencePieceTokenizer::open(kLlamaModel, config);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : nullptr;
}

struct GoldenRow {
  std::string text;
  json j;
};

std::vector<GoldenRow> golden_rows() {
  std::vector<GoldenRow> rows;
  std::ifstream f(kData + "/llama_spm_golden.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    GoldenRow r;
    r.text = j.contains("text") ? j["text"].get<std::string>() : from_hex(j["text_hex"].get<std::string>());
    r.j = std::move(j);
    rows.push_back(std::move(r));
  }
  return rows;
}

const EncodeOptions kRaw{.add_special = false, .parse_special = false};
const EncodeOptions kDefault{};

// ---------------------------------------------------------------- reference vectors

// llama-tokenizer-js@1.2.2 defaultTests(): encode(text, add_bos_token, add_preceding_space,
// log_performance) with all three true; its add_preceding_space is SentencePiece's dummy prefix,
// which the LLaMA model always applies.
TEST(SentencePieceTest, LlamaTokenizerJsVectors) {
  REQUIRE_ASSETS();
  const std::string path = kAssets + "/testvectors/llama2-llama-tokenizer-js.json";
  json vectors = json::parse(read_file(path), nullptr, false);
  ASSERT_FALSE(vectors.is_discarded()) << path;
  ASSERT_EQ(vectors.size(), 12u);
  for (const json& v : vectors) {
    const std::string text = v["text"].get<std::string>();
    const bool add_bos = v["args"][0].get<bool>();
    ASSERT_TRUE(v["args"][1].get<bool>()) << "add_preceding_space=false has no SentencePiece equivalent";
    const Ids want = to_ids(v["ids"]);
    EXPECT_EQ(llama().encode(text, {.add_special = add_bos, .parse_special = true}), want) << text;
    // The package's testCase also checks decode(encode(text)) == text.
    EXPECT_EQ(llama().decode(want, /*skip_special=*/true), text);
  }
  // Its decode-only cases with matching parameters.
  EXPECT_EQ(llama().decode({1, 2646, 1327, 287}, true), "grabbed");
  EXPECT_EQ(llama().decode({2646, 1327, 287}, true), "grabbed");
}

// ---------------------------------------------------------------- golden ids (SentencePiece oracle)

TEST(SentencePieceTest, GoldenIdsMatchSentencePiece) {
  REQUIRE_ASSETS();
  const auto rows = golden_rows();
  ASSERT_GE(rows.size(), 300u) << "regenerate with /usr/bin/python3 tests/tokenizer/make_spm_golden.py";
  int mismatches = 0;
  for (const GoldenRow& r : rows) {
    const Ids want = to_ids(r.j["ids"]);
    const Ids got = llama().encode(r.text, kRaw);
    if (got != want && ++mismatches <= 5)
      ADD_FAILURE() << "raw encode of '" << r.text << "': got " << show(got) << ", want " << show(want);
    Ids with_bos = {1};
    with_bos.insert(with_bos.end(), want.begin(), want.end());
    EXPECT_EQ(llama().encode(r.text, {.add_special = true, .parse_special = false}), with_bos) << r.text;
    const Ids want_special = r.j.contains("ids_special") ? to_ids(r.j["ids_special"]) : want;
    EXPECT_EQ(llama().encode(r.text, {.add_special = false, .parse_special = true}), want_special) << r.text;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(SentencePieceTest, GoldenDecodeAndRoundTrip) {
  REQUIRE_ASSETS();
  int roundtrips = 0;
  for (const GoldenRow& r : golden_rows()) {
    const Ids ids = to_ids(r.j["ids"]);
    const std::string decoded = llama().decode(ids, /*skip_special=*/true);
    EXPECT_EQ(decoded, r.j["decoded"].get<std::string>()) << show(ids);
    EXPECT_EQ(llama().decode(ids, /*skip_special=*/false), decoded);  // no special ids in there
    if (r.j["roundtrip"].get<bool>()) {
      ++roundtrips;
      EXPECT_EQ(llama().decode(llama().encode(r.text, kRaw), true), r.text);
      // With special-token parsing the text round-trips unless it spells a special token.
      if (!r.j.contains("ids_special")) {
        EXPECT_EQ(llama().decode(llama().encode(r.text, kDefault), true), r.text);
      }
    }
  }
  EXPECT_GE(roundtrips, 300);
}

TEST(SentencePieceTest, GoldenNonLegacy) {
  REQUIRE_ASSETS();
  TokenizerConfig config;
  config.legacy = false;
  auto t = llama_with(config);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->legacy());
  for (const GoldenRow& r : golden_rows()) {
    if (!r.j.contains("ids_nonlegacy")) continue;
    EXPECT_EQ(t->encode(r.text, {.add_special = false, .parse_special = true}), to_ids(r.j["ids_nonlegacy"]))
        << "'" << r.text << "'";
  }
}

// A unigram model with an NFKC charsmap and no BOS/EOS pieces: the wrapper adds nothing of its own.
TEST(SentencePieceTest, AlbertUnigramMatchesSentencePiece) {
  REQUIRE_ASSETS();
  auto r = SentencePieceTokenizer::open(kAlbertModel, TokenizerConfig{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SentencePieceTokenizer& t = *r.value();
  EXPECT_EQ(t.vocab_size(), 30000);
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_EQ(t.eos_id(), -1);
  int n = 0;
  for (const GoldenRow& row : golden_rows()) {
    if (!row.j.contains("ids_albert")) continue;
    ++n;
    EXPECT_EQ(t.encode(row.text, {.add_special = true, .parse_special = false}), to_ids(row.j["ids_albert"]))
        << "'" << row.text << "'";
  }
  EXPECT_GT(n, 50);
}

// ---------------------------------------------------------------- special tokens and vocabulary

TEST(SentencePieceTest, SpecialTokensInText) {
  REQUIRE_ASSETS();
  const auto& t = llama();
  // Raw SentencePiece spells them out; HF's slow tokenizer (legacy) splits and prefixes each piece.
  EXPECT_EQ(t.encode("<s>", kRaw), (Ids{529, 29879, 29958}));
  EXPECT_EQ(t.encode("<s>", {.add_special = false, .parse_special = true}), (Ids{1}));
  EXPECT_EQ(t.encode("a</s>b", {.add_special = false, .parse_special = true}), (Ids{263, 2, 289}));
  EXPECT_EQ(t.encode("Hello</s>", kDefault), (Ids{1, 15043, 2}));
  TokenizerConfig config;
  config.legacy = false;
  auto nl = llama_with(config);
  ASSERT_TRUE(nl);
  // Non-legacy: no "▁" after a special token; the leading "▁" before one is dropped.
  EXPECT_EQ(nl->encode("a</s>b", {.add_special = false, .parse_special = true}), (Ids{263, 2, 29890}));
  EXPECT_EQ(nl->encode("<s>Hello", {.add_special = false, .parse_special = true}), (Ids{1, 10994}));
  EXPECT_EQ(nl->encode("Hello", kDefault), (Ids{1, 15043}));
}

TEST(SentencePieceTest, DecodeSpecials) {
  REQUIRE_ASSETS();
  const auto& t = llama();
  EXPECT_EQ(t.decode({1, 15043, 2}, true), "Hello");
  EXPECT_EQ(t.decode({1, 15043, 2}, false), "<s> Hello</s>");
  EXPECT_EQ(t.decode({15043, 2, 15043}, true), "Hello Hello");
  EXPECT_EQ(t.decode({15043, 2, 15043}, false), "Hello</s> Hello");
  EXPECT_EQ(t.decode({0, 15043}, true), "Hello");
  EXPECT_EQ(t.decode({0, 15043}, false), "<unk> Hello");
  // Ids outside the vocabulary are skipped, not fatal.
  EXPECT_EQ(t.decode({-1, 15043, 32000, 1 << 30}, true), "Hello");
  EXPECT_EQ(t.decode({}, false), "");
  // Byte pieces: a valid sequence becomes the character, a broken one U+FFFD per byte.
  EXPECT_EQ(t.decode({243, 162, 169, 156}, true), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(t.decode({243, 162}, true), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(SentencePieceTest, Vocabulary) {
  REQUIRE_ASSETS();
  const auto& t = llama();
  EXPECT_STREQ(t.kind(), "sentencepiece");
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.piece(0), "<unk>");
  EXPECT_EQ(t.piece(1), "<s>");
  EXPECT_EQ(t.piece(13), "<0x0A>");
  EXPECT_EQ(t.piece(29871), "\xE2\x96\x81");
  EXPECT_EQ(t.piece(-1), "");
  EXPECT_EQ(t.piece(32000), "");
  EXPECT_TRUE(t.is_special(0));
  EXPECT_TRUE(t.is_special(1));
  EXPECT_TRUE(t.is_special(2));
  EXPECT_FALSE(t.is_special(13));
  EXPECT_FALSE(t.is_special(278));
  EXPECT_FALSE(t.is_special(-3));
  EXPECT_FALSE(t.is_special(40000));
  EXPECT_EQ(t.token_to_id("\xE2\x96\x81the"), 278);
  EXPECT_EQ(t.token_to_id("<unk>"), 0);
  EXPECT_EQ(t.token_to_id("</s>"), 2);
  EXPECT_EQ(t.token_to_id("no-such-piece-xyz"), -1);
  EXPECT_EQ(t.token_to_id(""), -1);
}

TEST(SentencePieceTest, AddedTokensBeyondModel) {
  REQUIRE_ASSETS();
  TokenizerConfig config;
  config.added_tokens_decoder[32000] = AddedTokenSpec{.content = "<pad>", .special = true};
  config.added_tokens_decoder[32001] = AddedTokenSpec{.content = "<tool>", .special = false, .rstrip = true};
  config.added_tokens_decoder[32002] = AddedTokenSpec{.content = "<sep>", .special = true, .lstrip = true};
  config.pad_token = "<pad>";
  auto t = llama_with(config);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->vocab_size(), 32003);
  EXPECT_EQ(t->piece(32001), "<tool>");
  EXPECT_EQ(t->token_to_id("<pad>"), 32000);
  EXPECT_TRUE(t->is_special(32000));
  EXPECT_FALSE(t->is_special(32001));
  const EncodeOptions parse{.add_special = false, .parse_special = true};
  EXPECT_EQ(t->encode("a<pad>b", parse), (Ids{263, 32000, 289}));
  // rstrip swallows the spaces after the token, lstrip those before it.
  EXPECT_EQ(t->encode("a<tool>   b", parse), (Ids{263, 32001, 289}));
  EXPECT_EQ(t->encode("a   <sep>b", parse), (Ids{263, 32002, 289}));
  // Without parse_special only the non-special added tokens are split off.
  EXPECT_EQ(t->encode("<tool>", kRaw), (Ids{32001}));
  EXPECT_NE(t->encode("<pad>", kRaw), (Ids{32000}));
  // Leftmost-longest: "<pad>" is matched, not a shorter overlapping token.
  EXPECT_EQ(t->decode({263, 32000, 289}, true), "a b");
  EXPECT_EQ(t->decode({263, 32000, 289}, false), "a<pad> b");
  EXPECT_EQ(t->decode({263, 32001, 289}, true), "a<tool> b");
}

TEST(SentencePieceTest, LeftmostLongestMatch) {
  REQUIRE_ASSETS();
  TokenizerConfig config;
  config.added_tokens_decoder[32000] = AddedTokenSpec{.content = "<|a|>", .special = true};
  config.added_tokens_decoder[32001] = AddedTokenSpec{.content = "<|a|><|b|>", .special = true};
  auto t = llama_with(config);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("<|a|><|b|><|a|>", {.add_special = false, .parse_special = true}), (Ids{32001, 32000}));
}

// ---------------------------------------------------------------- fast BPE vs libsentencepiece

// Random strings over an alphabet that stresses merges, spaces, "▁", bytes and invalid UTF-8.
std::string random_text(std::mt19937& rng, size_t max_len) {
  static const std::string kAlphabet[] = {
      "a", "b", "e", "t", "h", "the", "ing", " ", " ", "  ", "\n", "\t", "\r", "0", "1", "9", ".", ",", "<s>", "</s>",
      "<", ">", "\xE2\x96\x81", "\xC3\xA9", "e\xCC\x81", "\xE9\x95\x87", "\xE4\xB8\xAD", "\xF0\x9F\xA6\x99",
      "\xEA\x99\x8A", "\xFF", "\x80", "\xC3", "\xED\xA0\x80", "\xEF\xBF\xBD", std::string(1, '\0'), "Q", "Z", "x"};
  std::uniform_int_distribution<size_t> len(0, max_len), pick(0, std::size(kAlphabet) - 1);
  std::string s;
  const size_t n = len(rng);
  for (size_t i = 0; i < n; ++i) s += kAlphabet[pick(rng)];
  return s;
}

TEST(SentencePieceTest, FastBpeMatchesLibSentencePiece) {
  REQUIRE_ASSETS();
  for (bool legacy : {true, false}) {
    TokenizerConfig config;
    config.legacy = legacy;
    auto fast = SentencePieceTokenizer::open(kLlamaModel, config, /*allow_fast_bpe=*/true);
    auto lib = SentencePieceTokenizer::open(kLlamaModel, config, /*allow_fast_bpe=*/false);
    ASSERT_TRUE(fast.ok() && lib.ok());
    ASSERT_TRUE(fast.value()->uses_fast_bpe()) << fast.value()->fast_bpe_unavailable_reason();
    ASSERT_FALSE(lib.value()->uses_fast_bpe());
    const auto same = [&](const std::string& text) {
      for (const EncodeOptions& o : {kRaw, kDefault}) {
        const Ids a = fast.value()->encode(text, o), b = lib.value()->encode(text, o);
        if (a != b) {
          ADD_FAILURE() << "legacy=" << legacy << " text '" << text << "': fast " << show(a) << ", lib " << show(b);
          return false;
        }
      }
      return true;
    };
    std::string all;
    for (const GoldenRow& r : golden_rows()) {
      if (!same(r.text)) return;
      all += r.text;
    }
    ASSERT_TRUE(same(all));
    std::mt19937 rng(legacy ? 1 : 2);
    for (int i = 0; i < 3000; ++i)
      if (!same(random_text(rng, i < 2900 ? 24 : 400))) return;
  }
  // A model the fast path does not cover stays on libsentencepiece.
  auto albert = SentencePieceTokenizer::open(kAlbertModel, TokenizerConfig{});
  ASSERT_TRUE(albert.ok());
  EXPECT_FALSE(albert.value()->uses_fast_bpe());
  EXPECT_EQ(albert.value()->fast_bpe_unavailable_reason(), "not a BPE model");
}

// ---------------------------------------------------------------- corrupt models

// Drops every piece of the given type (3: control, 2: unknown, 6: byte) from a serialized
// ModelProto: field 1 holds the pieces, their field 3 the type.
std::string drop_pieces(const std::string& proto, int type) {
  const auto varint = [](const std::string& b, size_t* i) {
    uint64_t v = 0;
    for (int s = 0; *i < b.size(); s += 7) {
      const auto c = static_cast<unsigned char>(b[(*i)++]);
      v |= uint64_t{c & 0x7fu} << s;
      if (c < 0x80) break;
    }
    return v;
  };
  std::string out;
  size_t i = 0;
  while (i < proto.size()) {
    const size_t start = i;
    const uint64_t tag = varint(proto, &i);
    const int wire = static_cast<int>(tag & 7);
    size_t body = i, len = 0;
    if (wire == 0) varint(proto, &i);
    else if (wire == 5) i += 4;
    else if (wire == 1) i += 8;
    else if (wire == 2) { len = varint(proto, &i); body = i; i += len; }
    bool drop = false;
    if ((tag >> 3) == 1 && wire == 2) {
      const std::string piece = proto.substr(body, len);
      size_t k = 0;
      while (k < piece.size()) {
        const uint64_t t2 = varint(piece, &k);
        if ((t2 & 7) == 0) {
          const uint64_t v = varint(piece, &k);
          if ((t2 >> 3) == 3 && static_cast<int>(v) == type) drop = true;
        } else if ((t2 & 7) == 2) {
          k += varint(piece, &k);
        } else if ((t2 & 7) == 5) {
          k += 4;
        } else {
          k += 8;
        }
      }
    }
    if (!drop) out += proto.substr(start, i - start);
  }
  return out;
}

TEST(SentencePieceTest, CorruptModelsGiveCleanErrors) {
  REQUIRE_ASSETS();
  const std::string model = read_file(kLlamaModel);
  ASSERT_GT(model.size(), 100000u);
  const auto expect_error = [](std::string_view bytes, const std::string& what) {
    auto r = SentencePieceTokenizer::create(bytes, TokenizerConfig{}, "bad.model");
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_NE(r.status().message().find("bad.model: "), std::string::npos) << r.status().message();
  };
  expect_error("", "empty");
  expect_error(model.substr(0, 1000), "truncated inside a piece");
  expect_error(model.substr(0, model.size() / 2 + 3), "truncated in the middle");
  expect_error("{\"version\": \"1.0\", \"model\": {}}", "a tokenizer.json");
  std::mt19937 rng(7);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  expect_error(garbage, "random bytes");
  expect_error(drop_pieces(model, 6), "byte_fallback without byte pieces");
  expect_error(drop_pieces(model, 2), "no unknown piece");
  // Every truncation point parses or fails cleanly; none may crash (the ASan build checks reads).
  for (size_t n = 1; n < model.size(); n += 9973) {
    auto r = SentencePieceTokenizer::create(std::string_view(model).substr(0, n), TokenizerConfig{}, "cut.model");
    if (r.ok()) (void)r.value()->encode("Hello world \xF0\x9F\xA6\x99", kDefault);
  }
  // The file-level entry point names the path.
  TempDir dir;
  dir.write("tokenizer.model", "");
  auto r = load_tokenizer(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir.file("tokenizer.model") + ": expected a SentencePiece model"), std::string::npos)
      << r.status().message();
  dir.write("tokenizer.model", model.substr(0, 777));
  EXPECT_FALSE(load_tokenizer(dir.path()).ok());
}

// ---------------------------------------------------------------- load_tokenizer

TEST(SentencePieceTest, LoadTokenizerPaths) {
  REQUIRE_ASSETS();
  {
    auto r = load_tokenizer(kLlamaModel);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_STREQ(r.value()->kind(), "sentencepiece");
    EXPECT_EQ(r.value()->encode("Hello", kDefault), (Ids{1, 15043}));
  }
  TempDir dir;
  {
    auto r = load_tokenizer(dir.path());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("tokenizer.json"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("tokenizer.model"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(load_tokenizer(dir.file("nope")).ok());
  dir.write("vocab.txt", "a\n");
  {
    auto r = load_tokenizer(dir.file("vocab.txt"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("*.model"), std::string::npos) << r.status().message();
  }
  dir.copy_llama_model();
  dir.write("tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true})");
  {
    auto r = load_tokenizer(dir.path());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.value()->encode("Hello", kDefault), (Ids{15043, 2}));
    EXPECT_EQ(r.value()->encode("Hello", kRaw), (Ids{15043}));
  }
  {
    auto r = load_tokenizer(dir.file("tokenizer.model"));  // the file path reads the config beside it too
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.value()->encode("Hello", kDefault), (Ids{15043, 2}));
  }
  dir.write("tokenizer_config.json", R"({"add_bos_token": "yes"})");
  {
    auto r = load_tokenizer(dir.path());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("tokenizer_config.json: add_bos_token: expected a boolean, got string"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(SentencePieceTest, ConfigFlagsAffectEncode) {
  REQUIRE_ASSETS();
  TempDir dir;
  dir.copy_llama_model();
  const auto enc = [&](const std::string& config, std::string_view text) {
    dir.write("tokenizer_config.json", config);
    auto r = load_tokenizer(dir.path());
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value()->encode(text, kDefault) : Ids{-99};
  };
  EXPECT_EQ(enc("{}", "Hello"), (Ids{1, 15043}));
  EXPECT_EQ(enc(R"({"add_bos_token": true, "add_eos_token": true})", "Hello"), (Ids{1, 15043, 2}));
  EXPECT_EQ(enc(R"({"add_bos_token": null})", "Hello"), (Ids{15043}));
  EXPECT_EQ(enc(R"({"legacy": true})", "a</s>b"), (Ids{1, 263, 2, 289}));
  EXPECT_EQ(enc(R"({"legacy": false})", "a</s>b"), (Ids{1, 263, 2, 29890}));
  EXPECT_EQ(enc(R"({"legacy": null})", "a</s>b"), (Ids{1, 263, 2, 289}));
  // Another BOS text moves the BOS id.
  EXPECT_EQ(enc(R"({"bos_token": "</s>"})", "Hello"), (Ids{2, 15043}));
  EXPECT_EQ(enc(R"({"bos_token": {"content": "<unk>", "special": true}})", "Hello"), (Ids{0, 15043}));
}

// ---------------------------------------------------------------- tokenizer_config.json

TEST(TokenizerConfigTest, MissingFilesGiveDefaults) {
  TempDir dir;
  auto r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->add_bos_token.has_value());
  EXPECT_FALSE(r->add_eos_token.has_value());
  EXPECT_FALSE(r->legacy.has_value());
  EXPECT_TRUE(r->bos_token.empty());
  EXPECT_TRUE(r->added_tokens_decoder.empty());
  EXPECT_TRUE(r->chat_template.empty());
}

TEST(TokenizerConfigTest, RealMixtralConfig) {
  REQUIRE_ASSETS();
  auto r = read_tokenizer_config(kAssets + "/hf/mistral-7b-v0.1_mixtral-8x7b");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->add_bos_token, std::optional<bool>(true));
  EXPECT_EQ(r->add_eos_token, std::optional<bool>(false));
  EXPECT_EQ(r->legacy, std::optional<bool>(true));
  EXPECT_EQ(r->bos_token, "<s>");
  EXPECT_EQ(r->eos_token, "</s>");
  EXPECT_EQ(r->unk_token, "<unk>");
  EXPECT_EQ(r->pad_token, "");
  EXPECT_EQ(r->tokenizer_class, "LlamaTokenizer");
  ASSERT_EQ(r->added_tokens_decoder.size(), 3u);
  EXPECT_EQ(r->added_tokens_decoder.at(2).content, "</s>");
  EXPECT_TRUE(r->added_tokens_decoder.at(2).special);
  EXPECT_FALSE(r->added_tokens_decoder.at(2).normalized);
}

TEST(TokenizerConfigTest, RealConfigsOfOtherFamilies) {
  REQUIRE_ASSETS();
  auto ds = read_tokenizer_config(kAssets + "/hf/deepseek-v3");
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->bos_token, "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");  // {"content": ...}
  EXPECT_FALSE(ds->chat_template.empty());
  EXPECT_EQ(ds->unk_token, "");  // null
  auto qwen = read_tokenizer_config(kAssets + "/hf/qwen3");
  ASSERT_TRUE(qwen.ok()) << qwen.status().message();
  EXPECT_EQ(qwen->add_bos_token, std::optional<bool>(false));
  EXPECT_EQ(qwen->eos_token, "<|im_end|>");
  EXPECT_EQ(qwen->tokenizer_class, "Qwen2Tokenizer");
  for (const char* name : {"gpt-oss", "llama3"}) {
    auto r = read_tokenizer_config(kAssets + "/hf/" + name);
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().message();
  }
}

TEST(TokenizerConfigTest, SpecialTokensMapFillsGaps) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": null})");
  dir.write("special_tokens_map.json",
            R"({"bos_token": "<bos-from-map>", "eos_token": {"content": "</s>", "lstrip": false},
                "unk_token": "<unk>", "pad_token": "<pad>"})");
  auto r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->bos_token, "<s>");  // tokenizer_config wins
  EXPECT_EQ(r->eos_token, "</s>");
  EXPECT_EQ(r->unk_token, "<unk>");
  EXPECT_EQ(r->pad_token, "<pad>");
}

TEST(TokenizerConfigTest, ChatTemplateForms) {
  TempDir dir;
  dir.write("tokenizer_config.json",
            R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  auto r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->chat_template, "D");
  dir.write("tokenizer_config.json", R"({"chat_template": "{{ messages }}"})");
  r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "{{ messages }}");
  dir.write("chat_template.jinja", "from the jinja file");
  r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "from the jinja file");
}

TEST(TokenizerConfigTest, LegacyAddedTokensJson) {
  TempDir dir;
  dir.write("special_tokens_map.json", R"({"additional_special_tokens": ["<tool>"], "pad_token": "<pad>"})");
  dir.write("added_tokens.json", R"({"<pad>": 32000, "<tool>": 32001, "<plain>": 32002})");
  auto r = read_tokenizer_config(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->added_tokens_decoder.size(), 3u);
  EXPECT_TRUE(r->added_tokens_decoder.at(32000).special);
  EXPECT_TRUE(r->added_tokens_decoder.at(32001).special);
  EXPECT_FALSE(r->added_tokens_decoder.at(32002).special);
}

TEST(TokenizerConfigTest, MalformedFilesNameFileAndField) {
  struct Case {
    const char* file;
    const char* text;
    const char* want;  // in the message, after "<dir>/"
  };
  const Case cases[] = {
      {"tokenizer_config.json", "{not json", "tokenizer_config.json: expected valid JSON"},
      {"tokenizer_config.json", "[1, 2]", "tokenizer_config.json: expected a JSON object, got array"},
      {"tokenizer_config.json", R"({"add_eos_token": 1})", "tokenizer_config.json: add_eos_token: expected a boolean, got number"},
      {"tokenizer_config.json", R"({"legacy": "false"})", "tokenizer_config.json: legacy: expected a boolean, got string"},
      {"tokenizer_config.json", R"({"bos_token": 5})", "tokenizer_config.json: bos_token: expected a string or an object"},
      {"tokenizer_config.json", R"({"eos_token": {"id": 2}})", "tokenizer_config.json: eos_token.content: expected a string, got null"},
      {"tokenizer_config.json", R"({"added_tokens_decoder": []})", "tokenizer_config.json: added_tokens_decoder: expected an object"},
      {"tokenizer_config.json", R"({"added_tokens_decoder": {"x1": {"content": "a"}}})",
       "tokenizer_config.json: added_tokens_decoder[\"x1\"]: expected a non-negative 32-bit token id"},
      {"tokenizer_config.json", R"({"added_tokens_decoder": {"99999999999": {"content": "a"}}})",
       "tokenizer_config.json: added_tokens_decoder[\"99999999999\"]: expected a non-negative 32-bit token id"},
      {"tokenizer_config.json", R"({"added_tokens_decoder": {"5": {"special": true}}})",
       "tokenizer_config.json: added_tokens_decoder[\"5\"].content: expected a string, got null"},
      {"tokenizer_config.json", R"({"added_tokens_decoder": {"5": {"content": "a", "special": "yes"}}})",
       "tokenizer_config.json: added_tokens_decoder[\"5\"].special: expected a boolean, got string"},
      {"tokenizer_config.json", R"({"chat_template": 3})", "tokenizer_config.json: chat_template: expected a string or a list"},
      {"tokenizer_config.json", R"({"chat_template": [{"name": "default"}]})",
       "tokenizer_config.json: chat_template[0].template: expected a string, got null"},
      {"tokenizer_config.json", R"({"tokenizer_class": ["x"]})", "tokenizer_config.json: tokenizer_class: expected a string, got array"},
      {"special_tokens_map.json", "", "special_tokens_map.json: expected valid JSON"},
      {"special_tokens_map.json", R"({"unk_token": true})", "special_tokens_map.json: unk_token: expected a string or an object"},
      {"added_tokens.json", R"({"<x>": "1"})", "added_tokens.json: \"<x>\": expected a non-negative 32-bit token id, got string"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    dir.write(c.file, c.text);
    auto r = read_tokenizer_config(dir.path());
    ASSERT_FALSE(r.ok()) << c.file << ": " << c.text;
    EXPECT_NE(r.status().message().find(dir.path() + "/" + c.want), std::string::npos)
        << "got: " << r.status().message() << "\nwant: " << c.want;
  }
}

// ---------------------------------------------------------------- speed (printed, not asserted)

TEST(SentencePieceTest, EncodeSpeed) {
  REQUIRE_ASSETS();
  std::string text;
  std::vector<std::string> lines;
  for (const GoldenRow& r : golden_rows())
    if (r.j.contains("text") && r.text.size() > 20) lines.push_back(r.text);
  while (text.size() < (1u << 20))
    for (const std::string& l : lines) text += l + "\n";
  text.resize(1u << 20);
  // Cut at a character boundary.
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
  if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  const auto& t = llama();
  ASSERT_TRUE(t.uses_fast_bpe());
  {
    auto lib = SentencePieceTokenizer::open(kLlamaModel, TokenizerConfig{}, /*allow_fast_bpe=*/false);
    ASSERT_TRUE(lib.ok());
    const auto a = std::chrono::steady_clock::now();
    const Ids lib_ids = lib.value()->encode(text, kDefault);
    const auto b = std::chrono::steady_clock::now();
    std::printf("[ speed    ] libsentencepiece alone, 1 MiB as one string: %.1f MB/s\n",
                text.size() / std::chrono::duration<double>(b - a).count() / 1e6);
    EXPECT_EQ(lib_ids, t.encode(text, kDefault));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = t.encode(text, kDefault);
  const auto t1 = std::chrono::steady_clock::now();
  const std::string back = t.decode(ids, true);
  const auto t2 = std::chrono::steady_clock::now();
  const double enc_s = std::chrono::duration<double>(t1 - t0).count();
  const double dec_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("[ speed    ] encode 1 MiB as one string: %.1f MB/s (%zu tokens), decode %.1f MB/s\n",
              text.size() / enc_s / 1e6, ids.size(), text.size() / dec_s / 1e6);
  EXPECT_EQ(back, text);
  // Line by line, as a prompt-sized workload.
  std::vector<std::string_view> parts;
  for (size_t s = 0, e; s < text.size(); s = e + 1) {
    e = text.find('\n', s);
    if (e == std::string::npos) e = text.size();
    parts.push_back(std::string_view(text).substr(s, e - s));
  }
  size_t n_tokens = 0;
  const auto t3 = std::chrono::steady_clock::now();
  for (std::string_view p : parts) n_tokens += t.encode(p, kDefault).size();
  const auto t4 = std::chrono::steady_clock::now();
  std::printf("[ speed    ] encode 1 MiB in %zu lines: %.1f MB/s (%zu tokens)\n", parts.size(),
              text.size() / std::chrono::duration<double>(t4 - t3).count() / 1e6, n_tokens);
}

}  // namespace
}  // namespace moepp
