// Request bodies: every field range-checked, unknown fields refused, defaults as OpenAI's.
#include <gtest/gtest.h>

#include "server/openai_request.h"

namespace moepp::server {
namespace {

std::optional<CompletionRequest> parse(const std::string& text, bool chat, ApiError* error) {
  return parse_completion_request(nlohmann::json::parse(text), chat, RequestLimits{}, error);
}

TEST(OpenAiRequest, CompletionDefaultsAndFields) {
  ApiError e;
  auto r = parse(R"({"model": "m", "prompt": "hi"})", false, &e);
  ASSERT_TRUE(r) << e.message;
  EXPECT_EQ(r->prompt_text, "hi");
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_FLOAT_EQ(r->sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_EQ(r->n, 1);
  EXPECT_EQ(r->top_logprobs, -1);
  EXPECT_FALSE(r->seed_given);

  r = parse(R"({"prompt": [[1, 2, 3]], "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 4, "seed": -3,
                "stop": ["a", "bc"], "n": 3, "logprobs": 2, "stream": true, "stream_options": {"include_usage": true},
                "moepp_routes": true, "user": "u", "presence_penalty": 0})",
            false, &e);
  ASSERT_TRUE(r) << e.message;
  EXPECT_EQ(*r->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*r->max_tokens, 7);
  EXPECT_EQ(r->sampling.top_k, 4);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.5f);
  EXPECT_TRUE(r->seed_given);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(r->n, 3);
  EXPECT_EQ(r->top_logprobs, 2);
  EXPECT_TRUE(r->stream && r->include_usage && r->routes);
}

TEST(OpenAiRequest, ChatMessagesFlattenTextParts) {
  ApiError e;
  auto r = parse(R"({"messages": [{"role": "system", "content": "be brief"},
                                  {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
                     "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9})",
                 true, &e);
  ASSERT_TRUE(r) << e.message;
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[1]["content"], "ab");
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_EQ(*r->max_tokens, 9);
}

struct BadCase {
  const char* body;
  bool chat;
  const char* param;  // the field the error must name
};

TEST(OpenAiRequest, BadValuesNameTheField) {
  const BadCase cases[] = {
      {R"({"prompt": "x", "max_tokens": 0})", false, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 100000})", false, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1.5})", false, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 18446744073709551615})", false, "max_tokens"},
      {R"({"prompt": "x", "temperature": -0.1})", false, "temperature"},
      {R"({"prompt": "x", "temperature": "hot"})", false, "temperature"},
      {R"({"prompt": "x", "top_p": 0})", false, "top_p"},
      {R"({"prompt": "x", "top_p": 1.01})", false, "top_p"},
      {R"({"prompt": "x", "top_k": -1})", false, "top_k"},
      {R"({"prompt": "x", "n": 0})", false, "n"},
      {R"({"prompt": "x", "n": 99})", false, "n"},
      {R"({"prompt": "x", "logprobs": 21})", false, "logprobs"},
      {R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", false, "stop"},
      {R"({"prompt": "x", "stop": [""]})", false, "stop"},
      {R"({"prompt": "x", "stop": 3})", false, "stop"},
      {R"({"prompt": "x", "stream": "yes"})", false, "stream"},
      {R"({"prompt": "x", "echo": true})", false, "echo"},
      {R"({"prompt": "x", "frequency_penalty": 1})", false, "frequency_penalty"},
      {R"({"prompt": "x", "stream_options": {"other": 1}})", false, "stream_options.other"},
      {R"({"prompt": "x", "bogus": 1})", false, "bogus"},
      {R"({"prompt": [1, -2]})", false, "prompt"},
      {R"({"prompt": []})", false, "prompt"},
      {R"({"prompt": ["a", "b"]})", false, "prompt"},
      {R"({"prompt": {"a": 1}})", false, "prompt"},
      {R"({"max_tokens": 3})", false, "prompt"},
      {R"({"prompt": "x"})", true, "prompt"},  // a completions field sent to chat
      {R"({"messages": []})", true, "messages"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", true, "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", true, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", true, "messages[0].tool_calls"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true, "top_logprobs"},
  };
  for (const BadCase& c : cases) {
    ApiError e;
    EXPECT_FALSE(parse(c.body, c.chat, &e)) << c.body;
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << " -> " << e.message;
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(OpenAiRequest, InvalidUtf8IsRefused) {
  ApiError e;
  nlohmann::json body = {{"prompt", std::string("a\xff")}};
  EXPECT_FALSE(parse_completion_request(body, false, RequestLimits{}, &e));
  EXPECT_EQ(e.param, "prompt");
}

TEST(OpenAiRequest, ErrorBodyHasOpenAiShape) {
  ApiError e;
  e.message = "m";
  e.param = "p";
  auto j = nlohmann::json::parse(error_body(e));
  EXPECT_EQ(j["error"]["message"], "m");
  EXPECT_EQ(j["error"]["param"], "p");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(j["error"].contains("code"));
}

}  // namespace
}  // namespace moepp::server
