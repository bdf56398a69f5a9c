// `moepp generate -m DIR -p "text" -n 64` (or --ids 1,2,3): greedy or sampled generation,
// streaming text as it comes (token ids when the model has no tokenizer or with --print-ids).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "eval/ffn_text.h"
#include "eval/route_recorder.h"
#include "eval/route_stats.h"
#include "generation_flags.h"
#include "runtime/speculative.h"
#include "tokenizer/stream_decoder.h"

namespace moepp::cli {
namespace {

struct GenerateCliOptions {
  std::string model_dir, ids, prompt;
  GenerationFlags gen;
  bool json = false;
  bool ignore_eos = false;
  bool print_ids = false;
  DraftFlags draft;
  bool fixed_draft_n = false;
  bool stats = false;
  bool show_experts = false;
};

// The prompt and the answer once more through the model, recording every layer's routing: the
// FFN experts each token went through (mean over layers) and its text.
struct ExpertView {
  std::vector<double> ffn_per_token;  // [n_tokens]
  std::vector<std::string> texts;     // [n_tokens]
  int top_k = 0;
  double zc_share = 0;                // share of all slots that went to zero-computation experts
};

Result<ExpertView> view_experts(ThreadPool& pool, const Model& model, const Tokenizer* tokenizer,
                                const std::vector<int32_t>& ids) {
  const int64_t ctx = std::max<int64_t>(1, model.config().max_position_embeddings);
  auto record = record_routes(pool, model, ids, ctx, 512, /*progress=*/false);
  if (!record.ok()) return record.status();
  const RouteStats stats = compute_route_stats(*record, {});
  ExpertView v;
  v.ffn_per_token = stats.ffn_per_token;
  v.top_k = record->top_k;
  v.zc_share = 1.0 - stats.kind_share[static_cast<int>(ExpertKind::kFfn)];
  if (tokenizer != nullptr) {
    StreamDecoder decoder(*tokenizer, /*skip_special=*/true);
    for (int32_t id : ids) v.texts.push_back(decoder.push(id));
    if (!v.texts.empty()) v.texts.back() += decoder.flush();
  } else {
    for (int32_t id : ids) v.texts.push_back(" " + std::to_string(id));
  }
  return v;
}

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
  ThreadPool pool(o.gen.thread_count());  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();

  const bool text_out = tokenizer != nullptr && !o.print_ids && !o.json;
  std::unique_ptr<StreamDecoder> stream;
  if (text_out) stream = std::make_unique<StreamDecoder>(*tokenizer, /*skip_special=*/true);
  GenerateStats stats;
  bool first = true;
  std::unique_ptr<Model> draft_model;
  std::unique_ptr<Drafter> drafter;
  if (o.draft.enabled()) {
    auto factory = o.draft.factory(model, tokenizer.get(), *load_options, pool, g.sampling, &draft_model);
    if (!factory.ok()) return fail(factory.status());
    drafter = (*factory)();
  }
  SpeculativeOptions spec;
  spec.draft_n = o.draft.draft_n;
  spec.adaptive = !o.fixed_draft_n;
  SpeculativeStats spec_stats;
  auto on_token = [&](int32_t token) {
    if (text_out) {
      std::fputs(stream->push(token).c_str(), stdout);
    } else if (!o.json) {
      std::printf(first ? "%d" : " %d", token);
    }
    std::fflush(stdout);
    first = false;
    return true;
  };
  auto out = drafter ? generate_speculative(pool, model, *drafter, prompt, g, spec, on_token, &spec_stats)
                     : generate(pool, model, prompt, g, on_token, &stats);
  if (!out.ok()) return fail(out.status());
  if (drafter) {
    stats.prompt_tokens = static_cast<int64_t>(prompt.size());
    stats.generated_tokens = spec_stats.generated;
    stats.generate_seconds = spec_stats.seconds;
  }
  double plain_tok_s = 0;
  if (drafter && o.stats) {  // the same request decoded plainly, for the speed-up
    GenerateStats plain;
    auto again = generate(pool, model, prompt, g, [](int32_t) { return true; }, &plain);
    if (!again.ok()) return fail(again.status());
    plain_tok_s = plain.generate_seconds > 0 ? (plain.generated_tokens - 1) / plain.generate_seconds : 0;
  }
  if (text_out) std::fputs(stream->flush().c_str(), stdout);
  ExpertView experts;
  if (o.show_experts) {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), out->begin(), out->end());
    auto v = view_experts(pool, model, tokenizer.get(), all);
    if (!v.ok()) return fail(v.status());
    experts = std::move(v).value();
  }
  const double tok_s = stats.generate_seconds > 0 ? (stats.generated_tokens - 1) / stats.generate_seconds : 0;
  const double pp_s = stats.prompt_seconds > 0 ? stats.prompt_tokens / stats.prompt_seconds : 0;
  if (o.json) {
    nlohmann::json j = {{"prompt_ids", prompt}, {"tokens", *out}, {"prompt_tokens", stats.prompt_tokens},
                        {"generated_tokens", stats.generated_tokens}, {"prompt_tok_s", pp_s}, {"gen_tok_s", tok_s}};
    if (tokenizer) j["text"] = tokenizer->decode(*out, true);
    if (o.show_experts) j["ffn_per_token"] = experts.ffn_per_token, j["zc_share"] = experts.zc_share;
    if (drafter) {
      j["draft"] = drafter->name();
      j["verify_steps"] = spec_stats.verify_steps;
      j["accepted_per_step"] = spec_stats.accepted_per_step();
      j["implied_hit_rate"] = spec_stats.implied_hit_rate();
      j["acceptance_rate"] = spec_stats.acceptance_rate();
      if (o.stats) j["plain_tok_s"] = plain_tok_s, j["speedup"] = plain_tok_s > 0 ? tok_s / plain_tok_s : 0;
    }
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    if (o.show_experts) {
      const bool color = isatty(fileno(stdout)) != 0;
      std::printf("--- %s\n%s\n", ffn_text_legend(experts.top_k, color).c_str(),
                  render_ffn_text(experts.texts, experts.ffn_per_token, experts.top_k, color).c_str());
      const auto fewer = std::count_if(experts.ffn_per_token.begin(), experts.ffn_per_token.end(),
                                       [&](double f) { return f < experts.top_k - 1e-9; });
      const auto half = std::count_if(experts.ffn_per_token.begin(), experts.ffn_per_token.end(),
                                      [&](double f) { return f <= 0.5 * experts.top_k + 1e-9; });
      std::printf("--- %lld of %zu tokens used fewer than %d FFN experts per layer on average, %lld of them at most "
                  "%.1f; %.1f%% of all routing slots went to zero-computation experts\n",
                  (long long)fewer, experts.ffn_per_token.size(), experts.top_k, (long long)half,
                  0.5 * experts.top_k, 100 * experts.zc_share);
    }
    std::fflush(stdout);  // the generated line before the stats line, also when piped
    // The first generated token comes out of the prompt's pass: the decode rate needs two.
    const std::string rate = stats.generated_tokens >= 2 ? str_format(" at %.1f tok/s", tok_s) : std::string();
    std::fprintf(stderr, "prompt %lld tokens at %.1f tok/s; generated %lld tokens%s\n", (long long)stats.prompt_tokens,
                 pp_s, (long long)stats.generated_tokens, rate.c_str());
    if (drafter && o.stats)
      std::fprintf(stderr,
                   "draft %s: %lld verify steps, N = %.2f draft tokens accepted per step, implied hit rate p = %.3f, "
                   "acceptance %.1f%%; plain decoding %.1f tok/s, speed-up %.2fx\n",
                   drafter->name(), (long long)spec_stats.verify_steps, spec_stats.accepted_per_step(),
                   spec_stats.implied_hit_rate(), 100 * spec_stats.acceptance_rate(), plain_tok_s,
                   plain_tok_s > 0 ? tok_s / plain_tok_s : 0);
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
  o->draft.add_to(sub);
  sub->add_flag("--fixed-draft-n", o->fixed_draft_n, "Keep --draft-n fixed instead of adapting it");
  sub->add_flag("--stats", o->stats,
                "With --draft: report tokens accepted per step N, implied hit rate p and the speed-up over plain "
                "decoding (runs the request a second time without the draft)");
  sub->add_flag("--show-experts", o->show_experts,
                "Afterwards, show the prompt and answer with each token marked by the FFN experts it used "
                "(colours on a terminal, [text]F marks otherwise; with --json: ffn_per_token)");
  return [o] { return run_generate(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(30, add_generate_command);
}  // namespace moepp::cli
