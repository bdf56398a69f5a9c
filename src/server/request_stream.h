// The channel between the batch engine (producer: one event per generated token) and the HTTP
// handler that serves one request (consumer). Either side may end it: the engine when the
// sequence finishes, the handler when its client goes away or a stop string is found.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace moepp::server {

struct TokenEvent {
  int32_t id = -1;
  float logprob = 0;                                // log p(id) under the model (temperature 1)
  std::vector<std::pair<int32_t, float>> top;       // the most likely tokens, when asked for
  std::vector<int32_t> experts;                     // [n_moe_layers, top_k] when routes were asked for
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);  // OpenAI's names: "stop", "length", ...

class RequestStream {
 public:
  // Consumer side. Blocks until an event arrives (true) or the stream has ended and every event
  // was read (false).
  bool next(TokenEvent* event);
  void cancel() { cancelled_.store(true); }
  FinishReason finish_reason() const;
  std::string error() const;
  int64_t prompt_tokens() const { return prompt_tokens_; }

  // Producer side.
  bool cancelled() const { return cancelled_.load(); }
  void push(TokenEvent event);
  void finish(FinishReason reason, std::string error = {});
  void set_prompt_tokens(int64_t n) { prompt_tokens_ = n; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<TokenEvent> events_;
  FinishReason reason_ = FinishReason::kNone;
  std::string error_;
  std::atomic<bool> cancelled_{false};
  int64_t prompt_tokens_ = 0;
};

}  // namespace moepp::server
