// `moepp generate -m DIR -p "text" -n 64` (or --ids 1,2,3): greedy or sampled generation,
// streaming text as it comes (token ids when the model has no tokenizer or with --print-ids).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "tokenizer/stream_decoder.h"

namespace moepp::cli {
namespace {

struct GenerateCliOptions {
  std::string model_dir, ids, prompt;
  GenerationFlags gen;
  bool json = false;
  bool ignore_eos = false;
  bool print_ids = false;
};

int run_generate(const GenerateCliOptions& o) {
  if (o.prompt.empty() == o.ids.empty()) return fail(Status::Error("give the prompt as text with -p or as token ids with --ids (one of them)"));
  auto load_options = o.gen.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  auto gen_options = o.gen.options();
  if (!gen_options.ok()) return fail(gen_options.status());
  GenerateOptions g = *gen_options;
  g.stop_at_eos = !o.ignore_eos;

  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.prompt.empty()) {
    auto tok = load_tokenizer(o.model_dir);
    if (!tok.ok()) return fail(tok.status().with_context("-p needs the model's tokenizer"));
    tokenizer = std::move(tok).value();
    prompt = tokenizer->encode(o.prompt, EncodeOptions{});
  } else {
    auto ids = parse_ids(o.ids, "--ids");
    if (!ids.ok()) return fail(ids.status());
    prompt = *ids;
    auto tok = load_tokenizer(o.model_dir);  // optional with --ids: text output when present
    if (tok.ok()) tokenizer = std::move(tok).value();
  }
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  ThreadPool pool(o.gen.thread_count());

  const bool text_out = tokenizer != nullptr && !o.print_ids && !o.json;
  std::unique_ptr<StreamDecoder> stream;
  if (text_out) stream = std::make_unique<StreamDecoder>(*tokenizer, /*skip_special=*/true);
  GenerateStats stats;
  bool first = true;
  auto out = generate(pool, model, prompt, g, [&](int32_t token) {
    if (text_out) {
      std::fputs(stream->push(token).c_str(), stdout);
    } else if (!o.json) {
      std::printf(first ? "%d" : " %d", token);
    }
    std::fflush(stdout);
    first = false;
    return true;
  }, &stats);
  if (!out.ok()) return fail(out.status());
  if (text_out) std::fputs(stream->flush().c_str(), stdout);
  const double tok_s = stats.generate_seconds > 0 ? (stats.generated_tokens - 1) / stats.generate_seconds : 0;
  const double pp_s = stats.prompt_seconds > 0 ? stats.prompt_tokens / stats.prompt_seconds : 0;
  if (o.json) {
    nlohmann::json j = {{"prompt_ids", prompt}, {"tokens", *out}, {"prompt_tokens", stats.prompt_tokens},
                        {"generated_tokens", stats.generated_tokens}, {"prompt_tok_s", pp_s}, {"gen_tok_s", tok_s}};
    if (tokenizer) j["text"] = tokenizer->decode(*out, true);
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);  // the generated line before the stats line, also when piped
    std::fprintf(stderr, "prompt %lld tokens at %.1f tok/s; generated %lld tokens at %.1f tok/s\n",
                 (long long)stats.prompt_tokens, pp_s, (long long)stats.generated_tokens, tok_s);
  }
  return 0;
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a prompt, streaming it as it comes");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer, BOS added as its config says)");
  sub->add_option("--ids", o->ids, "Prompt as comma-separated token ids instead of text");
  o->gen.add_to(sub);
  sub->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after an end-of-sequence token");
  sub->add_flag("--print-ids", o->print_ids, "Stream token ids instead of text");
  sub->add_flag("--json", o->json, "Print one JSON object with the ids, text and speeds at the end");
  return [o] { return run_generate(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(30, add_generate_command);
}  // namespace moepp::cli
