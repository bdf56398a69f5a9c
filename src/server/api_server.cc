#include "server/api_server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>

#include <httplib.h>

#include "server/choice_builder.h"

namespace moepp::server {

namespace {

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_content(error_body(error), "application/json");
}

ApiError make_error(int status, std::string message, std::string param = {}, std::string type = "invalid_request_error") {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.param = std::move(param);
  e.type = std::move(type);
  return e;
}

std::string sse(const nlohmann::json& chunk) { return "data: " + chunk.dump() + "\n\n"; }

}  // namespace

class ApiServer::Impl {
 public:
  Impl(const Model& model, const Tokenizer& tokenizer, const ChatTemplate* chat_template, ThreadPool& pool,
       const ServerOptions& options)
      : model_(model),
        tokenizer_(tokenizer),
        chat_template_(chat_template),
        options_(options),
        metrics_(expert_kind_names(model)),
        engine_(model, pool, options.engine, &metrics_),
        seed_source_(std::random_device{}()) {
    stop_ids_ = model.config().eos_token_ids;
    if (tokenizer.eos_id() >= 0) stop_ids_.push_back(tokenizer.eos_id());
    setup();
  }

  Status run() {
    port_ = options_.port == 0 ? http_.bind_to_any_port(options_.host) : options_.port;
    if (options_.port != 0 && !http_.bind_to_port(options_.host, options_.port)) port_ = -1;
    if (port_ < 0)
      return Status::Error(str_format("--host %s --port %d: cannot bind (address in use, or not an address of this machine)",
                                      options_.host.c_str(), options_.port));
    std::fprintf(stderr, "moepp serve: listening on http://%s:%d (model %s, %d slots)\n", options_.host.c_str(), port_,
                 options_.model_name.c_str(), options_.engine.parallel);
    if (!http_.listen_after_bind()) return Status::Error("HTTP server stopped with an error");
    return Status::Ok();
  }
  void stop() { http_.stop(); }
  int port() const { return port_; }

 private:
  static std::vector<std::vector<std::string>> expert_kind_names(const Model& model) {
    std::vector<std::vector<std::string>> names;
    for (const auto& layer : model.config().layers) {
      names.emplace_back();
      for (ExpertKind k : layer.kinds) names.back().push_back(expert_kind_name(k));
    }
    return names;
  }

  void setup() {
    const int threads = options_.http_threads > 0
                            ? options_.http_threads
                            : options_.engine.parallel + options_.engine.max_queue + 4;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http_.set_payload_max_length(options_.max_body_bytes);
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (options_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + options_.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, make_error(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'", "",
                                 "authentication_error"));
      return httplib::Server::HandlerResponse::Handled;
    });
    // Bodies for statuses that httplib answers itself (404, 413, ...) when a handler set none.
    http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = str_format("HTTP %d for %s %s", res.status, req.method.c_str(), req.path.c_str());
      if (res.status == 404) message = "no such endpoint: " + req.method + " " + req.path;
      if (res.status == 413)
        message = str_format("request body larger than the limit of %zu bytes", options_.max_body_bytes);
      send_error(res, make_error(res.status, message));
    });
    http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, make_error(500, "internal error: " + what, "", "server_error"));
    });
    http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics_.count_request(req.path, res.status);
      if (options_.log_requests)
        std::fprintf(stderr, "moepp serve: %s %s %d %zu bytes\n", req.method.c_str(), req.path.c_str(), res.status,
                     req.body.size());
    });

    http_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.render_prometheus(), "text/plain; version=0.0.4");
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      nlohmann::json body = {{"object", "list"},
                             {"data", {{{"id", options_.model_name}, {"object", "model"}, {"created", unix_time()},
                                        {"owned_by", "moepp"}, {"max_model_len", options_.ctx_size}}}}};
      res.set_content(body.dump(), "application/json");
    });
    http_.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) { tokenize(req, res); });
    http_.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) { detokenize(req, res); });
    http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, false); });
    http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, true); });
  }

  // Parses the body as a JSON object, or answers 400.
  bool parse_body(const httplib::Request& req, httplib::Response& res, nlohmann::json* body) {
    *body = nlohmann::json::parse(req.body, nullptr, false);
    if (body->is_discarded()) {
      send_error(res, make_error(400, "body: expected a JSON object, got invalid JSON"));
      return false;
    }
    if (!body->is_object()) {
      send_error(res, make_error(400, "body: expected a JSON object"));
      return false;
    }
    return true;
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    nlohmann::json body;
    if (!parse_body(req, res, &body)) return;
    auto content = body.find("content");
    if (content == body.end() || !content->is_string())
      return send_error(res, make_error(400, "content: expected a string", "content"));
    auto add_special = body.find("add_special");
    if (add_special != body.end() && !add_special->is_boolean())
      return send_error(res, make_error(400, "add_special: expected a boolean", "add_special"));
    EncodeOptions eo;
    eo.add_special = add_special == body.end() || add_special->get<bool>();
    res.set_content(nlohmann::json({{"tokens", tokenizer_.encode(content->get<std::string>(), eo)}}).dump(),
                    "application/json");
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    nlohmann::json body;
    if (!parse_body(req, res, &body)) return;
    auto tokens = body.find("tokens");
    if (tokens == body.end() || !tokens->is_array())
      return send_error(res, make_error(400, "tokens: expected an array of token ids", "tokens"));
    std::vector<int32_t> ids;
    for (const auto& t : *tokens) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tokenizer_.vocab_size())
        return send_error(res, make_error(400, str_format("tokens: expected ids in [0, %lld), got %s",
                                                          static_cast<long long>(tokenizer_.vocab_size()), t.dump().c_str()),
                                          "tokens"));
      ids.push_back(t.get<int32_t>());
    }
    res.set_content(nlohmann::json({{"content", tokenizer_.decode(ids, false)}}).dump(), "application/json");
  }

  // The prompt's token ids, or an error.
  bool prompt_ids(const CompletionRequest& r, std::vector<int32_t>* ids, ApiError* error) {
    if (r.chat) {
      if (chat_template_ == nullptr) {
        *error = make_error(400, "this model has no chat template (a base model?); use /v1/completions", "messages");
        return false;
      }
      auto text = chat_template_->apply(r.messages, true);
      if (!text.ok()) {
        *error = make_error(400, "messages: the chat template failed: " + text.status().message(), "messages");
        return false;
      }
      EncodeOptions eo;
      eo.add_special = false;  // the template writes BOS itself
      *ids = tokenizer_.encode(*text, eo);
    } else if (r.prompt_ids) {
      *ids = *r.prompt_ids;
      for (int32_t id : *ids)
        if (id >= model_.config().vocab_size) {
          *error = make_error(400, str_format("prompt: expected token ids in [0, %lld), got %d",
                                              static_cast<long long>(model_.config().vocab_size), id), "prompt");
          return false;
        }
    } else {
      *ids = tokenizer_.encode(r.prompt_text, EncodeOptions{});
    }
    if (ids->empty()) {
      *error = make_error(400, "prompt: expected at least one token, got none", r.chat ? "messages" : "prompt");
      return false;
    }
    return true;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    nlohmann::json body;
    if (!parse_body(req, res, &body)) return;
    ApiError error;
    auto parsed = parse_completion_request(body, chat, options_.limits, &error);
    if (!parsed) return send_error(res, error);
    CompletionRequest& r = *parsed;
    std::vector<int32_t> prompt;
    if (!prompt_ids(r, &prompt, &error)) return send_error(res, error);
    const int64_t n_prompt = static_cast<int64_t>(prompt.size());
    if (n_prompt >= options_.ctx_size)
      return send_error(res, make_error(400, str_format("prompt: %lld tokens, the context holds %lld (prompt and reply)",
                                                        static_cast<long long>(n_prompt), static_cast<long long>(options_.ctx_size)),
                                        chat ? "messages" : "prompt", "invalid_request_error"));
    const int64_t room = options_.ctx_size - n_prompt;
    int64_t max_tokens = r.max_tokens.value_or(chat ? std::min(room, options_.limits.max_tokens) : std::min<int64_t>(16, room));
    if (max_tokens > room)
      return send_error(res, make_error(400, str_format("max_tokens: %lld tokens after a %lld-token prompt exceed the context of %lld",
                                                        static_cast<long long>(max_tokens), static_cast<long long>(n_prompt),
                                                        static_cast<long long>(options_.ctx_size)), "max_tokens"));

    std::vector<std::shared_ptr<RequestStream>> streams;
    uint64_t seed = r.sampling.seed;
    if (!r.seed_given) {
      std::lock_guard<std::mutex> lock(seed_mutex_);
      seed = seed_source_();
    }
    for (int i = 0; i < r.n; ++i) {
      EngineRequest e;
      e.prompt = prompt;
      e.max_tokens = max_tokens;
      e.sampling = r.sampling;
      e.sampling.seed = seed + static_cast<uint64_t>(i);  // each choice its own stream of randomness
      e.stop_ids = stop_ids_;
      e.top_logprobs = r.top_logprobs;
      e.routes = r.routes;
      auto stream = engine_.try_submit(std::move(e));
      if (!stream) {
        for (auto& s : streams) s->cancel();
        res.set_header("Retry-After", "1");
        return send_error(res, make_error(503, "the server is busy: every slot and queue place is taken; retry later", "",
                                          "server_overloaded"));
      }
      streams.push_back(std::move(stream));
    }
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(++request_counter_);
    const std::string model_name = r.model.empty() ? options_.model_name : r.model;
    // Copies what it needs: the streaming provider runs after this handler has returned.
    const int top_k = model_.config().layers.empty() ? 0 : model_.config().layers[0].router.top_k;
    auto make_builder = [this, chat = r.chat, stop = r.stop, top_logprobs = r.top_logprobs, routes = r.routes, top_k] {
      return std::make_unique<ChoiceBuilder>(tokenizer_, chat, stop, top_logprobs, routes, top_k);
    };
    if (!r.stream) return respond_whole(res, r, id, model_name, n_prompt, streams, make_builder);

    auto shared = std::make_shared<StreamingState>();
    shared->streams = streams;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, shared, r, id, model_name, n_prompt, make_builder](size_t, httplib::DataSink& sink) {
          // false (client gone) makes httplib close the connection and call the releaser.
          return stream_choices(sink, *shared, r, id, model_name, n_prompt, make_builder);
        },
        [shared](bool) {
          for (auto& s : shared->streams) s->cancel();  // client gone or done: free the slots
        });
  }

  struct StreamingState {
    std::vector<std::shared_ptr<RequestStream>> streams;
  };

  // Reads one choice to its end: the builder's text, the finish reason. on_text is called with
  // each released piece (streaming); returning false cancels (client gone).
  template <typename OnText>
  FinishReason drain(RequestStream& stream, ChoiceBuilder& builder, OnText on_text) {
    TokenEvent event;
    while (stream.next(&event)) {
      bool stopped = false;
      std::string text = builder.add(event, &stopped);
      if (!on_text(text, stopped)) {
        stream.cancel();
        return FinishReason::kCancelled;
      }
      if (stopped) {
        stream.cancel();
        return FinishReason::kStop;
      }
    }
    return stream.finish_reason();
  }

  template <typename MakeBuilder>
  void respond_whole(httplib::Response& res, const CompletionRequest& r, const std::string& id,
                     const std::string& model_name, int64_t n_prompt,
                     const std::vector<std::shared_ptr<RequestStream>>& streams, MakeBuilder make_builder) {
    nlohmann::json choices = nlohmann::json::array();
    int64_t completion_tokens = 0;
    for (size_t i = 0; i < streams.size(); ++i) {
      auto builder = make_builder();
      std::string text;
      FinishReason reason = drain(*streams[i], *builder, [&](const std::string& piece, bool) {
        text += piece;
        return true;
      });
      if (reason == FinishReason::kError) {
        for (auto& s : streams) s->cancel();
        return send_error(res, make_error(500, "generation failed: " + streams[i]->error(), "", "server_error"));
      }
      if (reason != FinishReason::kStop) text += builder->finish_text();
      completion_tokens += builder->tokens();
      nlohmann::json choice = {{"index", i}};
      if (r.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
      else choice["text"] = text;
      choice["logprobs"] = builder->take_logprobs();
      choice["finish_reason"] = finish_reason_name(reason);
      if (r.routes) choice["moepp_routes"] = builder->take_routes();
      choices.push_back(std::move(choice));
    }
    nlohmann::json body = {{"id", id},
                           {"object", r.chat ? "chat.completion" : "text_completion"},
                           {"created", unix_time()},
                           {"model", model_name},
                           {"choices", choices},
                           {"usage", usage(n_prompt, completion_tokens)}};
    res.set_content(body.dump(), "application/json");
  }

  static nlohmann::json usage(int64_t prompt, int64_t completion) {
    return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  }

  // Writes every choice as server-sent events, one choice after the other (they are generated
  // concurrently by the engine; each chunk carries its choice index).
  template <typename MakeBuilder>
  bool stream_choices(httplib::DataSink& sink, StreamingState& state, const CompletionRequest& r, const std::string& id,
                      const std::string& model_name, int64_t n_prompt, MakeBuilder make_builder) {
    const int64_t created = unix_time();
    auto chunk = [&](size_t index, const nlohmann::json& delta_or_text, const nlohmann::json& logprobs,
                     const nlohmann::json& routes, const nlohmann::json& finish) {
      nlohmann::json choice = {{"index", index}};
      if (r.chat) choice["delta"] = delta_or_text;
      else choice["text"] = delta_or_text;
      choice["logprobs"] = logprobs;
      choice["finish_reason"] = finish;
      if (r.routes) choice["moepp_routes"] = routes;
      nlohmann::json body = {{"id", id},
                             {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                             {"created", created},
                             {"model", model_name},
                             {"choices", nlohmann::json::array({choice})}};
      const std::string s = sse(body);
      return sink.write(s.data(), s.size());
    };
    int64_t completion_tokens = 0;
    for (size_t i = 0; i < state.streams.size(); ++i) {
      auto builder = make_builder();
      if (r.chat && !chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr, nullptr)) return false;
      bool client_gone = false;
      FinishReason reason = drain(*state.streams[i], *builder, [&](const std::string& piece, bool stopped) {
        nlohmann::json logprobs = builder->take_logprobs();
        nlohmann::json routes = builder->take_routes();
        if (piece.empty() && logprobs.is_null() && routes.is_null()) return true;
        const nlohmann::json text = r.chat ? nlohmann::json{{"content", piece}} : nlohmann::json(piece);
        client_gone = !chunk(i, text, logprobs, routes, nullptr);
        return !client_gone;
      });
      if (client_gone) return false;
      if (reason == FinishReason::kError) {
        // Headers are out already: the error travels as an event, then the stream ends.
        const std::string s = sse(nlohmann::json::parse(
            error_body(make_error(500, "generation failed: " + state.streams[i]->error(), "", "server_error"))));
        if (!sink.write(s.data(), s.size())) return false;
        break;
      }
      std::string tail = reason == FinishReason::kStop ? "" : builder->finish_text();
      completion_tokens += builder->tokens();
      const nlohmann::json text = r.chat ? (tail.empty() ? nlohmann::json::object() : nlohmann::json{{"content", tail}})
                                         : nlohmann::json(tail);
      if (!chunk(i, text, nullptr, nullptr, finish_reason_name(reason))) return false;
    }
    if (r.include_usage) {
      nlohmann::json body = {{"id", id},
                             {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                             {"created", created},
                             {"model", model_name},
                             {"choices", nlohmann::json::array()},
                             {"usage", usage(n_prompt, completion_tokens)}};
      const std::string s = sse(body);
      if (!sink.write(s.data(), s.size())) return false;
    }
    const std::string done = "data: [DONE]\n\n";
    if (!sink.write(done.data(), done.size())) return false;
    sink.done();
    return true;
  }

  const Model& model_;
  const Tokenizer& tokenizer_;
  const ChatTemplate* chat_template_;
  ServerOptions options_;
  ServerMetrics metrics_;
  BatchEngine engine_;
  httplib::Server http_;
  std::vector<int32_t> stop_ids_;
  std::mutex seed_mutex_;
  std::mt19937_64 seed_source_;
  std::atomic<int64_t> request_counter_{0};
  int port_ = -1;
};

ApiServer::ApiServer(const Model& model, const Tokenizer& tokenizer, const ChatTemplate* chat_template, ThreadPool& pool,
                     const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, tokenizer, chat_template, pool, options)) {}
ApiServer::~ApiServer() = default;
Status ApiServer::run() { return impl_->run(); }
void ApiServer::stop() { impl_->stop(); }
int ApiServer::bound_port() const { return impl_->port(); }

}  // namespace moepp::server
