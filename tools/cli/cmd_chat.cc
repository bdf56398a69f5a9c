// `moepp chat -m DIR`: a conversation on stdin/stdout through the model's chat template.
// `--print-prompt -f messages.json` renders the template for a saved conversation and exits.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"

namespace moepp::cli {
namespace {

struct ChatOptions {
  std::string model_dir, system, messages_file;
  bool print_prompt = false;
  bool no_generation_prompt = false;
  GenerationFlags gen;
};

Result<nlohmann::ordered_json> read_messages(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_array()) return Status::Error(path + ": expected a JSON array of {\"role\", \"content\"} messages");
  return j;
}

int run_chat(const ChatOptions& o) {
  auto config = read_tokenizer_config(o.model_dir);
  if (!config.ok()) return fail(config.status());
  if (config->chat_template.empty())
    return fail(Status::Error(o.model_dir + "/tokenizer_config.json: no chat_template (a base model?); use `moepp generate -p`"));
  auto chat_template = ChatTemplate::create(config->chat_template, *config);
  if (!chat_template.ok()) return fail(chat_template.status().with_context(o.model_dir + "/tokenizer_config.json"));

  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.messages_file.empty()) {
    auto m = read_messages(o.messages_file);
    if (!m.ok()) return fail(m.status());
    messages = *m;
  }
  if (!o.system.empty()) messages.insert(messages.begin(), {{"role", "system"}, {"content", o.system}});
  if (o.print_prompt) {
    auto text = chat_template->apply(messages, !o.no_generation_prompt);
    if (!text.ok()) return fail(text.status());
    std::fputs(text->c_str(), stdout);
    return 0;
  }

  auto load_options = o.gen.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  auto gen_options = o.gen.options();
  if (!gen_options.ok()) return fail(gen_options.status());
  auto tok = load_tokenizer(o.model_dir);
  if (!tok.ok()) return fail(tok.status());
  const Tokenizer& tokenizer = **tok;
  ThreadPool pool(o.gen.thread_count());  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  GenerateOptions g = *gen_options;
  if (tokenizer.eos_id() >= 0) g.extra_stop_ids.push_back(tokenizer.eos_id());

  const bool interactive = ::isatty(STDIN_FILENO);
  std::string line;
  for (;;) {
    if (interactive) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto prompt_text = chat_template->apply(messages, true);
    if (!prompt_text.ok()) return fail(prompt_text.status());
    EncodeOptions eo;
    eo.add_special = false;  // the template writes BOS itself
    const std::vector<int32_t> prompt = tokenizer.encode(*prompt_text, eo);
    StreamDecoder stream(tokenizer, /*skip_special=*/true);
    std::string reply;
    auto out = generate(pool, *loaded.value(), prompt, g, [&](int32_t token) {
      const std::string piece = stream.push(token);
      reply += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;
    }, nullptr);
    if (!out.ok()) return fail(out.status());
    const std::string tail = stream.flush();
    reply += tail;
    std::printf("%s\n", tail.c_str());
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

}  // namespace

Runner add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* sub = app.add_subcommand("chat", "Chat with a model through its chat template (one user turn per input line)");
  sub->add_option("-m,--model", o->model_dir, "Model directory (with tokenizer files and a chat_template)")->required();
  sub->add_option("--system", o->system, "System message to start the conversation with");
  sub->add_option("-f,--messages", o->messages_file, "JSON file with earlier messages [{\"role\", \"content\"}, ...]");
  sub->add_flag("--print-prompt", o->print_prompt, "Print the rendered chat template for the messages and exit");
  sub->add_flag("--no-generation-prompt", o->no_generation_prompt, "With --print-prompt: leave out the assistant header");
  o->gen.add_to(sub);
  return [o] { return run_chat(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(40, add_chat_command);
}  // namespace moepp::cli
