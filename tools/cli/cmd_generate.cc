// `moepp generate -m DIR --ids 1,2,3 -n 64`: greedy or sampled generation, streaming token ids
// as they come. (-p TEXT needs the tokenizer work; until then it explains and exits.)
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "runtime/generator.h"

namespace moepp::cli {
namespace {

struct GenerateCliOptions {
  std::string model_dir, ids, prompt;
  std::string dtype = "f32";
  int64_t n_predict = 64;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false;
  bool ignore_eos = false;
};

int run_generate(const GenerateCliOptions& o) {
  if (!o.prompt.empty())
    return fail(Status::Error("-p/--prompt: text prompts need a tokenizer, which this build does not have yet; pass token ids with --ids"));
  if (o.ids.empty()) return fail(Status::Error("--ids: expected the prompt's token ids, got nothing"));
  auto ids = parse_ids(o.ids, "--ids");
  if (!ids.ok()) return fail(ids.status());
  auto dtype = parse_dtype(o.dtype);
  if (!dtype.ok()) return fail(dtype.status());
  if (o.n_predict < 0) return fail(Status::Error("-n: expected a number of tokens >= 0, got " + std::to_string(o.n_predict)));
  GenerateOptions g;
  g.max_new_tokens = o.n_predict;
  g.sampling = {o.temperature, o.top_k, o.top_p, o.seed};
  g.stop_at_eos = !o.ignore_eos;
  Status valid = g.sampling.validate();
  if (!valid.ok()) return fail(valid);
  auto loaded = Model::load(o.model_dir, LoadOptions{*dtype});
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  ThreadPool pool(o.threads > 0 ? o.threads : ThreadPool::default_threads());
  GenerateStats stats;
  bool first = true;
  auto out = generate(pool, model, *ids, g, [&](int32_t token) {
    if (!o.json) {
      std::printf(first ? "%d" : " %d", token);
      std::fflush(stdout);
    }
    first = false;
    return true;
  }, &stats);
  if (!out.ok()) return fail(out.status());
  const double tok_s = stats.generate_seconds > 0 ? (stats.generated_tokens - 1) / stats.generate_seconds : 0;
  const double pp_s = stats.prompt_seconds > 0 ? stats.prompt_tokens / stats.prompt_seconds : 0;
  if (o.json) {
    nlohmann::json j = {{"tokens", *out}, {"prompt_tokens", stats.prompt_tokens},
                        {"generated_tokens", stats.generated_tokens}, {"prompt_tok_s", pp_s}, {"gen_tok_s", tok_s}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);  // the token line before the stats line, also when piped
    std::fprintf(stderr, "prompt %lld tokens at %.1f tok/s; generated %lld tokens at %.1f tok/s\n",
                 (long long)stats.prompt_tokens, pp_s, (long long)stats.generated_tokens, tok_s);
  }
  return 0;
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* sub = app.add_subcommand("generate", "Generate tokens from a prompt, streaming them as they come");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  sub->add_option("--ids", o->ids, "Comma-separated prompt token ids");
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (needs a tokenizer)");
  sub->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  sub->add_option("--temp,--temperature", o->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", o->top_k, "Keep the k most likely tokens; 0 = all")->capture_default_str();
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub->add_option("-s,--seed", o->seed, "Random seed for sampling")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Compute precision: f32 or bf16")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads (default: physical cores)");
  sub->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after an end-of-sequence token");
  sub->add_flag("--json", o->json, "Print one JSON object with the tokens and speeds at the end");
  return [o] { return run_generate(*o); };
}

}  // namespace moepp::cli
