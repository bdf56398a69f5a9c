// `moepp perplexity -m DIR -f TEXT [--ctx N] [--stride S]`: sliding-window perplexity with its
// standard error; --save-logits writes the next-token distributions, --kl-base compares with them.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "eval/kl.h"
#include "eval/perplexity.h"
#include "eval/token_input.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {
namespace {

struct PerplexityOptions {
  std::string model_dir, kl_base, save_logits;
  TokenInput input;
  ModelFlags model;
  int64_t ctx = 0, stride = 0, batch_tokens = 512;
  int save_top_k = 0;
  int threads = 0;
  bool json = false;
};

int run_perplexity(const PerplexityOptions& o) {
  if (!o.kl_base.empty() && !o.save_logits.empty())
    return fail(Status::Error("--kl-base and --save-logits: expected one of them, got both"));
  if (o.batch_tokens < 1) return fail(Status::Error("--batch-tokens: expected a positive number, got " + std::to_string(o.batch_tokens)));
  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  std::unique_ptr<Tokenizer> tok;
  if (o.input.has_text()) {
    auto t = load_tokenizer(o.model_dir);
    if (!t.ok()) return fail(t.status());
    tok = std::move(t.value());
  }
  auto ids = load_token_input(o.input, tok.get());
  if (!ids.ok()) return fail(ids.status());
  ThreadPool pool(thread_count(o.threads));  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  const int64_t vocab = model.config().vocab_size;
  const int64_t max_pos = model.config().max_position_embeddings;
  const int64_t ctx = o.ctx > 0 ? o.ctx : (max_pos > 0 ? std::min<int64_t>(max_pos, 4096) : 2048);
  const int64_t stride = o.stride > 0 ? o.stride : std::max<int64_t>(1, ctx / 2);

  LogitsWriter writer;
  LogitsReader reader;
  std::vector<double> kl, cur;
  int64_t same_top1 = 0;
  LogitsRow base;
  RowSink sink;
  if (!o.save_logits.empty()) {
    Status s = writer.open(o.save_logits, vocab, o.save_top_k);
    if (!s.ok()) return fail(s);
    sink = [&](int64_t, int64_t, int32_t target, const float* logits) { return writer.add(target, logits); };
  } else if (!o.kl_base.empty()) {
    Status s = reader.open(o.kl_base);
    if (!s.ok()) return fail(s);
    if (reader.vocab_size() != vocab)
      return fail(Status::Error(str_format("%s: saved logits: vocab_size %lld, expected the model's %lld", o.kl_base.c_str(),
                                           static_cast<long long>(reader.vocab_size()), static_cast<long long>(vocab))));
    sink = [&](int64_t, int64_t, int32_t target, const float* logits) -> Status {
      MOEPP_RETURN_IF_ERROR(reader.next(&base));
      if (base.target != target)
        return Status::Error(str_format("%s: row %zu: target token %d, expected %d (the same text and --ctx/--stride as the saved run)",
                                        o.kl_base.c_str(), kl.size(), base.target, target));
      log_softmax(logits, vocab, &cur);
      kl.push_back(kl_divergence(base, cur));
      int32_t cur_top = 0, base_top = 0;
      for (int64_t i = 1; i < vocab; ++i)
        if (cur[i] > cur[cur_top]) cur_top = static_cast<int32_t>(i);
      if (base.ids.empty()) {
        for (int64_t i = 1; i < vocab; ++i)
          if (base.logprobs[i] > base.logprobs[base_top]) base_top = static_cast<int32_t>(i);
      } else {
        base_top = base.ids[0];
      }
      same_top1 += cur_top == base_top;
      return Status::Ok();
    };
  }
  ScorerOptions so;
  so.max_batch_tokens = o.batch_tokens;
  so.progress_label = "perplexity";
  auto result = compute_perplexity(pool, model, *ids, ctx, stride, so, sink);
  if (!result.ok()) return fail(result.status());
  if (!o.save_logits.empty()) {
    Status s = writer.close();
    if (!s.ok()) return fail(s);
  }
  if (!o.kl_base.empty() && static_cast<int64_t>(kl.size()) != reader.n_rows())
    return fail(Status::Error(str_format("%s: saved logits: %lld rows, expected the %zu scored now (the same text and --ctx/--stride)",
                                         o.kl_base.c_str(), static_cast<long long>(reader.n_rows()), kl.size())));
  const NllSummary& s = result->summary;
  const KlSummary k = summarize_kl(kl, same_top1);
  if (o.json) {
    nlohmann::json j = {{"n_tokens", ids->size()}, {"n_scored", s.n},          {"n_windows", result->n_windows},
                        {"ctx", ctx},              {"stride", stride},         {"mean_nll", s.mean_nll},
                        {"nll_stderr", s.nll_stderr}, {"ppl", s.ppl},          {"ppl_stderr", s.ppl_stderr},
                        {"token_nll", result->nll}};
    if (!o.kl_base.empty())
      j["kl"] = {{"n", k.n},           {"mean", k.mean}, {"stderr", k.stderr_mean}, {"median", k.median},
                 {"p99", k.p99},       {"max", k.max},   {"same_top1", k.same_top1}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("perplexity: %.4f +/- %.4f\n", s.ppl, s.ppl_stderr);
  std::printf("mean NLL: %.6f +/- %.6f nats over %lld tokens (%lld windows, context %lld, stride %lld)\n", s.mean_nll, s.nll_stderr,
              static_cast<long long>(s.n), static_cast<long long>(result->n_windows), static_cast<long long>(ctx),
              static_cast<long long>(stride));
  if (!o.kl_base.empty())
    std::printf("KL divergence vs %s: mean %.6g +/- %.6g, median %.6g, p99 %.6g, max %.6g; same top-1 token %.2f%%\n",
                o.kl_base.c_str(), k.mean, k.stderr_mean, k.median, k.p99, k.max, 100.0 * k.same_top1);
  if (!o.save_logits.empty())
    std::printf("saved %lld rows of next-token log-probabilities to %s\n", static_cast<long long>(s.n), o.save_logits.c_str());
  return 0;
}

}  // namespace

Runner add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* sub = app.add_subcommand("perplexity", "Sliding-window perplexity of a text (and KL divergence against saved logits)");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  add_token_input_flags(sub, &o->input);
  sub->add_option("--ctx", o->ctx, "Context length of a window (default: max_position_embeddings, at most 4096)");
  sub->add_option("--stride", o->stride, "Tokens between window starts, 1..ctx (default: ctx / 2)");
  sub->add_option("--save-logits", o->save_logits, "Write every scored position's log-probabilities (see docs/evaluation.md)");
  sub->add_option("--save-top-k", o->save_top_k, "With --save-logits: keep only the k most likely tokens per position (0 = all)")->capture_default_str();
  sub->add_option("--kl-base", o->kl_base, "Report KL(saved || this run) per position against a --save-logits file");
  sub->add_option("--batch-tokens", o->batch_tokens, "Tokens per forward pass (windows are packed together)")->capture_default_str();
  o->model.add_to(sub);
  add_threads_option(sub, &o->threads);
  sub->add_flag("--json", o->json, "Print the results as JSON (with every token's NLL)");
  return [o] { return run_perplexity(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(60, add_perplexity_command);
}  // namespace moepp::cli
