// `moepp serve -m DIR`: the OpenAI-compatible HTTP server with continuous batching.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "server/api_server.h"
#include "tokenizer/chat_template.h"

namespace moepp::cli {
namespace {

// SIGINT/SIGTERM reach whichever thread the kernel picks, ours or a library's (OpenBLAS starts
// threads before main), so the handler only writes the signal number to a pipe (safe in a
// handler); a thread of ours reads it and stops the server.
int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &b, 1);
}

Status install_stop_signals() {
  if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) return Status::Error("serve: cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, nullptr) != 0 || sigaction(SIGTERM, &sa, nullptr) != 0)
    return Status::Error("serve: cannot install the SIGINT/SIGTERM handler");
  return Status::Ok();
}

struct ServeOptions {
  std::string model_dir;
  server::ServerOptions server;
  int threads = 0;
  int64_t max_body_kib = 1024;
  bool quiet = false;
  ModelFlags model;
  DraftFlags draft;
};

int run_serve(ServeOptions o) {
  if (o.server.port < 0 || o.server.port > 65535)
    return fail(Status::Error(str_format("--port: expected 0..65535, got %d", o.server.port)));
  if (o.server.engine.parallel < 1 || o.server.engine.parallel > 256)
    return fail(Status::Error(str_format("--parallel: expected 1..256 slots, got %d", o.server.engine.parallel)));
  if (o.server.engine.max_queue < 0 || o.server.engine.max_queue > 4096)
    return fail(Status::Error(str_format("--queue: expected 0..4096, got %d", o.server.engine.max_queue)));
  if (o.server.engine.step_tokens < 1)
    return fail(Status::Error(str_format("--batch-tokens: expected >= 1, got %lld", static_cast<long long>(o.server.engine.step_tokens))));
  if (o.max_body_kib < 1) return fail(Status::Error(str_format("--max-body: expected >= 1 KiB, got %lld", static_cast<long long>(o.max_body_kib))));
  if (o.server.limits.max_tokens < 1)
    return fail(Status::Error(str_format("--max-tokens: expected >= 1, got %lld", static_cast<long long>(o.server.limits.max_tokens))));
  if (o.server.api_key.empty())
    if (const char* key = std::getenv("MOEPP_API_KEY")) o.server.api_key = key;
  o.server.max_body_bytes = static_cast<size_t>(o.max_body_kib) * 1024;
  o.server.log_requests = !o.quiet;

  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  auto tok = load_tokenizer(o.model_dir);
  if (!tok.ok()) return fail(tok.status().with_context("serve needs the model's tokenizer"));
  auto tok_config = read_tokenizer_config(o.model_dir);
  if (!tok_config.ok()) return fail(tok_config.status());
  std::unique_ptr<ChatTemplate> chat_template;
  if (!tok_config->chat_template.empty()) {
    auto t = ChatTemplate::create(tok_config->chat_template, *tok_config);
    if (!t.ok()) return fail(t.status().with_context(o.model_dir + "/tokenizer_config.json"));
    chat_template = std::make_unique<ChatTemplate>(std::move(t).value());
  }
  ThreadPool pool(thread_count(o.threads));  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  const int64_t model_ctx = model.config().max_position_embeddings;
  if (o.server.ctx_size == 0) o.server.ctx_size = model_ctx > 0 ? std::min<int64_t>(model_ctx, 4096) : 4096;
  if (o.server.ctx_size <= 1) return fail(Status::Error(str_format("--ctx-size: expected >= 2, got %lld", static_cast<long long>(o.server.ctx_size))));
  if (model_ctx > 0 && o.server.ctx_size > model_ctx)
    return fail(Status::Error(str_format("--ctx-size: %lld is more than the model's max_position_embeddings %lld",
                                         static_cast<long long>(o.server.ctx_size), static_cast<long long>(model_ctx))));
  if (o.server.model_name.empty())
    o.server.model_name = std::filesystem::path(o.model_dir).lexically_normal().filename().string();
  if (o.server.model_name.empty()) o.server.model_name = "moepp";
  if (o.server.host != "127.0.0.1" && o.server.host != "localhost" && o.server.host != "::1" && o.server.api_key.empty())
    std::fprintf(stderr, "moepp serve: warning: listening on %s without --api-key: anyone who can reach it may use it\n",
                 o.server.host.c_str());

  if (Status s = install_stop_signals(); !s.ok()) return fail(s);

  std::unique_ptr<Model> draft_model;  // outlives the server, whose drafters read it
  if (o.draft.enabled()) {
    // Greedy drafts: the engine's acceptance treats each proposal as certain (one-hot q), which
    // keeps every request's output distribution exactly the target's.
    auto factory = o.draft.factory(model, tok->get(), *load_options, pool, SamplingParams{}, &draft_model);
    if (!factory.ok()) return fail(factory.status());
    // A draft model (a directory, self or zc) drafts for all sequences in shared forward passes;
    // n-gram drafts stay per sequence.
    if (draft_model) o.server.engine.draft_model = draft_model.get();
    else o.server.engine.make_drafter = *factory;
    o.server.engine.draft_n = o.draft.draft_n;
  }
  server::ApiServer api(model, **tok, chat_template.get(), pool, o.server);
  std::thread waiter([&] {
    unsigned char sig = 0;
    while (read(g_stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig != 0) std::fprintf(stderr, "moepp serve: signal %d, stopping\n", sig);
    api.stop();
  });
  Status status = api.run();
  const unsigned char wake = 0;  // wakes the waiter when run() ended first
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &wake, 1);
  waiter.join();
  if (!status.ok()) return fail(status);
  return 0;
}

}  // namespace

Runner add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API (continuous batching)");
  sub->add_option("-m,--model", o->model_dir, "Model directory (with its tokenizer)")->required();
  sub->add_option("--host", o->server.host, "Address to listen on (loopback by default)")->capture_default_str();
  sub->add_option("--port", o->server.port, "TCP port; 0 picks a free one")->capture_default_str();
  sub->add_option("--api-key", o->server.api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health (or set MOEPP_API_KEY)");
  sub->add_option("--alias", o->server.model_name, "Model id reported by /v1/models (default: the directory name)");
  sub->add_option("-c,--ctx-size", o->server.ctx_size, "Context per sequence: prompt + generated tokens (default: the model's, at most 4096)");
  sub->add_option("--np,--parallel", o->server.engine.parallel, "Sequences decoded together (slots)")->capture_default_str();
  sub->add_option("--queue", o->server.engine.max_queue, "Requests that may wait for a slot; more get 503")->capture_default_str();
  sub->add_option("--batch-tokens", o->server.engine.step_tokens, "Tokens per forward step (decode tokens + prompt chunks)")
      ->capture_default_str();
  sub->add_option("--max-tokens", o->server.limits.max_tokens, "Largest max_tokens a request may ask for")->capture_default_str();
  sub->add_option("--max-body", o->max_body_kib, "Largest request body in KiB (413 beyond)")->capture_default_str();
  add_threads_option(sub, &o->threads, "Compute threads (default: physical cores)");
  sub->add_flag("-q,--quiet", o->quiet, "No per-request log lines (prompts are never logged)");
  o->model.add_to(sub);
  o->draft.add_to(sub);
  return [o] { return run_serve(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(90, add_serve_command);
}  // namespace moepp::cli
