// Log-likelihood scoring of JSONL tasks as lm-evaluation-harness does it: multiple choice (acc,
// acc_norm normalised by the continuation's byte length) and target continuations (LAMBADA).
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "eval/scorer.h"
#include "eval/task_format.h"
#include "tokenizer/tokenizer.h"

namespace moepp {

// A document as token ids: one context, one continuation per choice (a target task has one).
struct EncodedDoc {
  std::vector<int32_t> context;                    // non-empty (BOS at least)
  std::vector<std::vector<int32_t>> continuations;  // [n_choices][n_tokens]
  std::vector<double> norm_lengths;                 // [n_choices] acc_norm divisors (bytes)
};

struct EncodeTaskOptions {
  int shots = 0;
  bool add_bos = true;  // text mode: encode the context with the tokenizer's special tokens
};

// Text mode needs a tokenizer; lm-eval's split: trailing spaces of the context move to the
// continuation, continuation = encode(context + continuation)[len(encode(context)):].
// Ids mode uses the ids as they are; acc_norm divides by the choice text's bytes when given,
// else by its token count. The first `shots` fewshot documents prefix every context.
Result<std::vector<EncodedDoc>> encode_task(const std::vector<TaskDoc>& docs, const std::vector<TaskDoc>& fewshot,
                                            const EncodeTaskOptions& options, const Tokenizer* tokenizer);

struct DocScore {
  std::vector<double> logliks;   // [n_choices] sum of log p over the continuation tokens
  std::vector<uint8_t> greedy;   // [n_choices] every continuation token was the argmax
  std::vector<int64_t> n_tokens;  // [n_choices]
  int pred = -1, pred_norm = -1;  // multiple choice: argmax of loglik, of loglik / norm_length
};

Result<std::vector<DocScore>> score_task(ThreadPool& pool, const Model& model, const std::vector<EncodedDoc>& docs,
                                         const ScorerOptions& options);

struct TaskMetrics {
  TaskKind kind = TaskKind::kMultipleChoice;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0;            // multiple choice: pred == gold; target: greedy
  double acc_norm = 0, acc_norm_stderr = 0;  // multiple choice only
  double ppl = 0;                            // target only: exp(-mean loglik per document)
};

// stderr as lm-eval: sample standard deviation / sqrt(n).
TaskMetrics task_metrics(const std::vector<TaskDoc>& docs, const std::vector<DocScore>& scores);
double mean_stderr(const std::vector<double>& values);

}  // namespace moepp
