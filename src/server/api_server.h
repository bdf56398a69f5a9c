// `moepp serve`: an OpenAI-compatible HTTP API (cpp-httplib) over the continuous-batching
// engine. Endpoints: /v1/completions, /v1/chat/completions (both with SSE streaming),
// /v1/models, /health, /metrics, /tokenize, /detokenize.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "models/model.h"
#include "server/batch_engine.h"
#include "server/openai_request.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace moepp::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;          // empty: no authentication
  std::string model_name;       // the id /v1/models reports
  int64_t ctx_size = 0;         // prompt + generated tokens per sequence (0: the model's, at most 4096)
  size_t max_body_bytes = 1 << 20;
  int http_threads = 0;         // 0: enough for every slot and queue place
  bool log_requests = true;     // one line per request on stderr (never the prompt text)
  RequestLimits limits;
  EngineOptions engine;
};

class ApiServer {
 public:
  // chat_template may be null (a base model): /v1/chat/completions then answers 400.
  ApiServer(const Model& model, const Tokenizer& tokenizer, const ChatTemplate* chat_template, ThreadPool& pool,
            const ServerOptions& options);
  ~ApiServer();

  // Binds and serves until stop(); returns an error when the address cannot be bound.
  Status run();
  void stop();
  int bound_port() const;  // the actual port (useful with --port 0)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moepp::server
