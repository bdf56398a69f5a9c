// Turns one choice's token events into OpenAI response pieces: streamed text (UTF-8 whole,
// stop strings cut), log-probabilities in the completions or chat layout, and the routes
// extension.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "server/request_stream.h"
#include "server/stop_strings.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace moepp::server {

class ChoiceBuilder {
 public:
  ChoiceBuilder(const Tokenizer& tokenizer, bool chat, std::vector<std::string> stops, int top_logprobs, bool routes,
                int top_k);

  // Consumes one token; returns the text it releases. Sets *stopped when a stop string ended it.
  std::string add(const TokenEvent& event, bool* stopped);
  std::string finish_text();  // what is held back at the end (partial stop-string match, bytes)

  int64_t tokens() const { return tokens_; }
  // The pieces for the tokens added since the last take_* call (streaming) or all (non-streaming).
  nlohmann::json take_logprobs();  // null when not requested
  nlohmann::json take_routes();    // null when not requested: [token][layer][k] expert ids

 private:
  void add_logprobs(const TokenEvent& event);

  const Tokenizer& tokenizer_;
  bool chat_;
  StreamDecoder decoder_;
  StopStringFilter stops_;
  int top_logprobs_;
  bool routes_;
  int top_k_;
  int64_t tokens_ = 0;
  int64_t text_offset_ = 0;
  nlohmann::json logprobs_;  // completions: {tokens, token_logprobs, top_logprobs, text_offset}; chat: [..]
  nlohmann::json route_list_ = nlohmann::json::array();
};

}  // namespace moepp::server
