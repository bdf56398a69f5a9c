// Chat templates rendered by moepp's Jinja subset equal what Jinja2 renders with transformers'
// settings (goldens from make_chat_template_golden.py), and unsupported Jinja is refused
// with the line and construct named.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace moepp {
namespace {

nlohmann::ordered_json golden() {
  std::ifstream in(std::string(MOEPP_TOKENIZER_TEST_DATA) + "/chat_templates.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::ordered_json::parse(ss.str(), nullptr, false);
}

TEST(ChatTemplate, MatchesJinja2OnRealAndFeatureTemplates) {
  const nlohmann::ordered_json g = golden();
  ASSERT_TRUE(g.is_object()) << "missing tests/tokenizer/data/chat_templates.json";
  int checked = 0;
  for (const auto& c : g["cases"]) {
    TokenizerConfig config;
    config.bos_token = c["bos_token"];
    config.eos_token = c["eos_token"];
    auto t = ChatTemplate::create(g["templates"][c["template"].get<std::string>()], config);
    ASSERT_TRUE(t.ok()) << c["name"] << ": " << t.status().message();
    auto out = t->apply(c["messages"], c["add_generation_prompt"], c["extra"]);
    if (c.contains("error")) {
      ASSERT_FALSE(out.ok()) << c["name"] << " should fail like Jinja2: " << c["error"];
      EXPECT_NE(out.status().message().find(c["error"].get<std::string>()), std::string::npos) << out.status().message();
    } else {
      ASSERT_TRUE(out.ok()) << c["name"] << ": " << out.status().message();
      EXPECT_EQ(*out, c["expected"].get<std::string>()) << c["name"];
    }
    ++checked;
  }
  EXPECT_GE(checked, 70);
}

TEST(ChatTemplate, UnsupportedConstructsAreNamed) {
  const struct {
    const char* source;
    const char* needle;
  } cases[] = {
      {"ok\n{% macro f(x) %}{{ x }}{% endmacro %}", "line 2: unsupported construct '{% macro %}'"},
      {"{{ messages | frobnicate }}", "unsupported filter 'frobnicate'"},
      {"{% if true %}never closed", "missing {% endif %}"},
      {"{{ 'unterminated }}", "never closed"},
      {"{% for a in messages recursive %}{% endfor %}", "recursive"},
      {"{{ (1, 2) }}", "tuples are not supported"},
  };
  for (const auto& c : cases) {
    auto t = ChatTemplate::create(c.source, TokenizerConfig{});
    std::string message;
    if (!t.ok()) {
      message = t.status().message();
    } else {
      auto out = t->apply(nlohmann::ordered_json::array(), false);
      ASSERT_FALSE(out.ok()) << c.source;
      message = out.status().message();
    }
    EXPECT_NE(message.find("chat template: line"), std::string::npos) << message;
    EXPECT_NE(message.find(c.needle), std::string::npos) << message;
  }
}

TEST(ChatTemplate, BadMessagesAreRejected) {
  auto t = ChatTemplate::create("{% for m in messages %}{{ m.content }}{% endfor %}", TokenizerConfig{});
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->apply(nlohmann::ordered_json::object(), false).ok());
  auto bad = t->apply(nlohmann::ordered_json::parse(R"([{"content": "no role"}])"), false);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("messages[0]"), std::string::npos);
}

}  // namespace
}  // namespace moepp
