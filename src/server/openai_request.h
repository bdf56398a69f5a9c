// Parsing and range-checking of OpenAI-style request bodies (/v1/completions and
// /v1/chat/completions). Every field is checked before any work starts; an unknown field or a
// value out of range is answered 400 with the field named, as OpenAI does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"

namespace moepp::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string param;                          // the offending field, "" if none
  std::string type = "invalid_request_error";
};

// The OpenAI error body: {"error": {"message", "type", "param", "code"}}.
std::string error_body(const ApiError& error);

struct RequestLimits {
  int64_t max_tokens = 4096;  // largest max_tokens a request may ask for
  int max_n = 8;              // choices per request
  int max_stop = 4;           // stop strings per request
  int max_top_logprobs = 20;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::string prompt_text;                   // completions: the prompt as text
  std::optional<std::vector<int32_t>> prompt_ids;  // completions: the prompt as token ids
  nlohmann::ordered_json messages;           // chat: [{"role", "content"}] with content flattened to text
  std::optional<int64_t> max_tokens;         // absent: the endpoint's default
  SamplingParams sampling;
  bool seed_given = false;
  std::vector<std::string> stop;
  int n = 1;
  int top_logprobs = -1;                     // -1: no logprobs
  bool stream = false;
  bool include_usage = false;                // stream_options.include_usage
  bool routes = false;                       // extension "moepp_routes": experts per generated token
};

// body: the parsed JSON body. Returns the request, or fills *error and returns nullopt.
std::optional<CompletionRequest> parse_completion_request(const nlohmann::json& body, bool chat,
                                                          const RequestLimits& limits, ApiError* error);

}  // namespace moepp::server
