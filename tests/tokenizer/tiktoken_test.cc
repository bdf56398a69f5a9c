// tiktoken backend against gpt-tokenizer's TestPlans.txt (313 reference encodings over
// r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base) plus special tokens and decode facts.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/backends.h"
#include "tokenizer/tiktoken_tokenizer.h"

namespace moepp {
namespace {

using Ids = std::vector<int32_t>;

std::string assets() { return MOEPP_TOKENIZER_ASSETS; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool require_assets() {
  if (std::filesystem::exists(assets() + "/.complete-v1")) return true;
  ADD_FAILURE() << "tokenizer assets missing at " << assets() << ": run scripts/fetch-tokenizer-assets.sh";
  return false;
}

const Tokenizer* encoding(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  const std::string file = name == "p50k_edit" ? "p50k_base" : name;
  auto r = load_tiktoken_tokenizer(assets() + "/tiktoken/" + file + ".tiktoken", name);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return nullptr;
  return (cache[name] = std::move(r).value()).get();
}

struct Plan {
  std::string encoding, sample;
  Ids encoded;
};

// Parsed exactly as gpt-tokenizer's own test does (blocks separated by a blank line).
std::vector<Plan> load_plans() {
  const std::string data = read_file(assets() + "/tiktoken/TestPlans.txt");
  std::vector<Plan> plans;
  size_t pos = 0;
  while (pos <= data.size()) {
    size_t end = data.find("\n\n", pos);
    if (end == std::string::npos) end = data.size();
    const std::string block = data.substr(pos, end - pos);
    pos = end + 2;
    std::vector<std::string> lines;
    std::stringstream ss(block);
    for (std::string line; std::getline(ss, line);) lines.push_back(line);
    if (lines.size() < 3 || lines[0].empty() || lines[1].empty() || lines[2].empty()) continue;
    auto after = [](const std::string& line) {
      const size_t k = line.find(": ");
      return k == std::string::npos ? std::string() : line.substr(k + 2);
    };
    Plan p;
    p.encoding = after(lines[0]);
    p.sample = after(lines[1]);
    const auto ids = nlohmann::json::parse(after(lines[2]), nullptr, false);
    if (!ids.is_array()) continue;
    p.encoded = ids.get<Ids>();
    plans.push_back(std::move(p));
  }
  return plans;
}

TEST(TiktokenVectors, GptTokenizerTestPlans) {
  if (!require_assets()) return;
  const std::vector<Plan> plans = load_plans();
  ASSERT_EQ(plans.size(), 313u);
  std::map<std::string, std::pair<int, int>> per_encoding;  // passed, total
  for (const Plan& p : plans) {
    const Tokenizer* tok = encoding(p.encoding);
    ASSERT_NE(tok, nullptr) << p.encoding;
    const Ids got = tok->encode(p.sample, EncodeOptions{});
    EXPECT_EQ(got, p.encoded) << p.encoding << ": \"" << p.sample << "\"";
    EXPECT_EQ(tok->decode(got, false), p.sample) << p.encoding << " round trip: \"" << p.sample << "\"";
    auto& [passed, total] = per_encoding[p.encoding];
    passed += got == p.encoded;
    ++total;
  }
  for (const auto& [name, counts] : per_encoding)
    std::printf("TestPlans %-12s %d/%d pass\n", name.c_str(), counts.first, counts.second);
}

TEST(TiktokenEncode, SpecialTokens) {
  if (!require_assets()) return;
  const Tokenizer* cl = encoding("cl100k_base");
  ASSERT_NE(cl, nullptr);
  EXPECT_EQ(cl->encode("<|endoftext|>", {}), (Ids{100257}));
  EXPECT_EQ(cl->encode("a<|fim_prefix|>b", {}), (Ids{64, 100258, 65}));
  const Ids plain = cl->encode("<|endoftext|>", {.add_special = true, .parse_special = false});
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(cl->decode(plain, false), "<|endoftext|>");
  EXPECT_EQ(cl->eos_id(), 100257);
  EXPECT_EQ(cl->bos_id(), -1);
  EXPECT_TRUE(cl->is_special(100276));
  EXPECT_EQ(cl->decode({64, 100257, 65}, true), "ab");
  EXPECT_EQ(cl->decode({64, 100257, 65}, false), "a<|endoftext|>b");
  EXPECT_EQ(cl->token_to_id("<|endofprompt|>"), 100276);
  EXPECT_EQ(cl->vocab_size(), 100277);
  const Tokenizer* o200k = encoding("o200k_base");
  ASSERT_NE(o200k, nullptr);
  EXPECT_EQ(o200k->encode("<|endofprompt|>", {}), (Ids{200018}));
  const Tokenizer* edit = encoding("p50k_edit");
  ASSERT_NE(edit, nullptr);
  EXPECT_EQ(edit->encode("<|fim_suffix|>", {}), (Ids{50283}));
  EXPECT_EQ(std::string(edit->kind()), "tiktoken");
}

TEST(TiktokenDecode, InvalidUtf8AndRepairs) {
  if (!require_assets()) return;
  const Tokenizer* cl = encoding("cl100k_base");
  ASSERT_NE(cl, nullptr);
  const Ids llama = cl->encode("🦙", {});
  ASSERT_GT(llama.size(), 1u);
  EXPECT_EQ(cl->decode({llama[0]}, false), "\xEF\xBF\xBD");  // a truncated sequence: one U+FFFD
  EXPECT_EQ(cl->encode("a\xFF", {}), cl->encode("a\xEF\xBF\xBD", {}));
  // A long run without merges takes the heap path, not a quadratic scan.
  const std::string digits(100000, '7');
  EXPECT_EQ(cl->decode(cl->encode(digits, {}), false), digits);
  const std::string letters(200000, 'x');
  EXPECT_EQ(cl->decode(cl->encode(letters, {}), false), letters);
  const std::string spaces(100000, ' ');
  EXPECT_EQ(cl->decode(cl->encode(spaces + "x", {}), false), spaces + "x");
}

TEST(TiktokenMalformed, CleanErrors) {
  auto bad = parse_tiktoken_tokenizer("IQ== 0\n", "x.tiktoken", "nope_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("encoding: expected one of"), std::string::npos);
  bad = parse_tiktoken_tokenizer("IQ== 0\n!!! 1\n", "x.tiktoken", "cl100k_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("x.tiktoken:2: expected \"<base64 token> <rank>\""), std::string::npos)
      << bad.status().message();
  bad = parse_tiktoken_tokenizer("IQ== x\n", "x.tiktoken", "cl100k_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("x.tiktoken:1: expected a decimal rank"), std::string::npos);
  bad = parse_tiktoken_tokenizer("IQ== 999999999\n", "x.tiktoken", "cl100k_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("x.tiktoken:1: expected a rank below 2^24"), std::string::npos);
  bad = parse_tiktoken_tokenizer("IQ== 0\n", "x.tiktoken", "cl100k_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("expected a rank for every single byte"), std::string::npos);
  bad = parse_tiktoken_tokenizer("IQ== 0\nIQ== 1\n", "x.tiktoken", "cl100k_base");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("repeated token"), std::string::npos);
  auto missing = load_tiktoken_tokenizer("/nonexistent/cl100k_base.tiktoken");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);
}

TEST(TiktokenBenchmark, DISABLED_EncodeOneMegabyte) {
  if (!require_assets()) return;
  std::string base;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file()) base += read_file(e.path().string());
  if (base.empty()) base = "The quick brown fox jumps over the lazy dog. ";
  std::string text;
  while (text.size() < (1 << 20)) text += base;
  text.resize(1 << 20);
  while (!text.empty() && (static_cast<uint8_t>(text.back()) & 0xC0) == 0x80) text.pop_back();
  for (const char* name : {"r50k_base", "cl100k_base", "o200k_base"}) {
    const Tokenizer* tok = encoding(name);
    ASSERT_NE(tok, nullptr);
    for (int rep = 0; rep < 2; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      const Ids ids = tok->encode(text, {});
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%-12s %s: %zu bytes -> %zu tokens in %.3f s = %.1f MB/s\n", name, rep == 0 ? "cold" : "warm",
                  text.size(), ids.size(), s, text.size() / s / 1e6);
    }
  }
}

}  // namespace
}  // namespace moepp
