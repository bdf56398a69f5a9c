// `moepp eval -m DIR --task FILE.jsonl [--shots K --fewshot-file F] [--limit N] [--json]`:
// log-likelihood scoring of a multiple-choice or target task (docs/evaluation.md).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "eval/task_scoring.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace moepp::cli {
namespace {

struct EvalOptions {
  std::string model_dir, task, fewshot_file;
  ModelFlags model;
  int shots = 0;
  int64_t limit = 0, batch_tokens = 512;
  int threads = 0;
  bool json = false, no_bos = false;
};

int run_eval(const EvalOptions& o) {
  if (o.limit < 0) return fail(Status::Error("--limit: expected a non-negative number of documents, got " + std::to_string(o.limit)));
  if (o.batch_tokens < 1) return fail(Status::Error("--batch-tokens: expected a positive number, got " + std::to_string(o.batch_tokens)));
  if (o.shots > 0 && o.fewshot_file.empty()) return fail(Status::Error("--shots: expected --fewshot-file too, got none"));
  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  auto docs = read_task_file(o.task);
  if (!docs.ok()) return fail(docs.status());
  if (o.limit > 0 && static_cast<int64_t>(docs->size()) > o.limit) docs->resize(static_cast<size_t>(o.limit));
  std::vector<TaskDoc> fewshot;
  if (!o.fewshot_file.empty()) {
    auto f = read_task_file(o.fewshot_file);
    if (!f.ok()) return fail(f.status());
    fewshot = std::move(f.value());
  }
  std::unique_ptr<Tokenizer> tok;
  if (!(*docs)[0].ids_mode) {
    auto t = load_tokenizer(o.model_dir);
    if (!t.ok()) return fail(t.status().with_context("text task"));
    tok = std::move(t.value());
  }
  EncodeTaskOptions eo;
  eo.shots = o.shots;
  eo.add_bos = !o.no_bos;
  auto encoded = encode_task(*docs, fewshot, eo, tok.get());
  if (!encoded.ok()) return fail(encoded.status().with_context(o.task));
  ThreadPool pool(thread_count(o.threads));  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  ScorerOptions so;
  so.max_batch_tokens = o.batch_tokens;
  so.progress_label = "eval";
  auto scores = score_task(pool, model, *encoded, so);
  if (!scores.ok()) return fail(scores.status().with_context(o.task));
  const TaskMetrics m = task_metrics(*docs, *scores);
  const bool mc = m.kind == TaskKind::kMultipleChoice;
  if (o.json) {
    nlohmann::json j = {{"task", o.task}, {"kind", mc ? "multiple_choice" : "target"}, {"n", m.n}, {"shots", o.shots},
                        {"acc", m.acc},   {"acc_stderr", m.acc_stderr}};
    if (mc) {
      j["acc_norm"] = m.acc_norm;
      j["acc_norm_stderr"] = m.acc_norm_stderr;
    } else {
      j["ppl"] = m.ppl;
    }
    nlohmann::json per_doc = nlohmann::json::array();
    for (size_t i = 0; i < docs->size(); ++i) {
      const DocScore& s = (*scores)[i];
      nlohmann::json d = {{"line", (*docs)[i].line}, {"logliks", s.logliks}, {"greedy", s.greedy}, {"n_tokens", s.n_tokens},
                          {"context_tokens", (*encoded)[i].context.size()}};
      if (mc) {
        d["gold"] = (*docs)[i].gold;
        d["pred"] = s.pred;
        d["pred_norm"] = s.pred_norm;
      }
      per_doc.push_back(d);
    }
    j["docs"] = per_doc;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s: %lld documents, %d-shot\n", o.task.c_str(), static_cast<long long>(m.n), o.shots);
  if (mc) {
    std::printf("acc       %.4f +/- %.4f\n", m.acc, m.acc_stderr);
    std::printf("acc_norm  %.4f +/- %.4f\n", m.acc_norm, m.acc_norm_stderr);
  } else {
    std::printf("acc (greedy continuation)  %.4f +/- %.4f\n", m.acc, m.acc_stderr);
    std::printf("perplexity                 %.4f\n", m.ppl);
  }
  return 0;
}

}  // namespace

Runner add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand("eval", "Score a multiple-choice or target task by log-likelihood (JSONL, see docs/evaluation.md)");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  sub->add_option("--task", o->task, "Task file: one JSON document per line")->required();
  sub->add_option("--shots", o->shots, "Few-shot examples before every document (the first K of --fewshot-file)")->capture_default_str();
  sub->add_option("--fewshot-file", o->fewshot_file, "Documents to take the few-shot examples from (same format)");
  sub->add_option("--limit", o->limit, "Score only the first N documents (0 = all)");
  sub->add_flag("--no-bos", o->no_bos, "Text tasks: do not add the tokenizer's BOS token to the context");
  sub->add_option("--batch-tokens", o->batch_tokens, "Tokens per forward pass (choices are packed together)")->capture_default_str();
  o->model.add_to(sub);
  add_threads_option(sub, &o->threads);
  sub->add_flag("--json", o->json, "Print metrics and per-document scores as JSON");
  return [o] { return run_eval(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(61, add_eval_command);
}  // namespace moepp::cli
