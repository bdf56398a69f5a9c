// Batched log-likelihood scoring: many independent sequences packed into one Batch (one KV slot
// each), so task choices and perplexity windows run at prefill speed.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "base/status.h"
#include "models/model.h"
#include "platform/thread_pool.h"

namespace moepp {

// One sequence to score: tokens[score_from ..] are scored, each given all tokens before it.
struct ScoreRequest {
  std::vector<int32_t> tokens;  // [n] context followed by the continuation
  int64_t score_from = 1;       // in [1, n]
};

struct ScoreResult {
  std::vector<double> logprobs;  // [n - score_from] log p(token | prefix)
  std::vector<uint8_t> greedy;  // [n - score_from] 1 if the token is the argmax of its row
  double sum() const;
  bool all_greedy() const;
};

// Sees every scored row in request order, positions ascending: the raw logits [vocab_size] that
// predict `target`. Used to save logits and to compute KL divergence; an error stops scoring.
using RowSink = std::function<Status(int64_t request, int64_t index, int32_t target, const float* logits)>;

struct ScorerOptions {
  int64_t max_batch_tokens = 512;  // tokens per forward pass; a longer request runs alone
  const char* progress_label = nullptr;  // progress bar on a terminal; null: none
};

// log_softmax(logits)[target] in double precision, and whether target is the (first) argmax.
double log_softmax_at(const float* logits /*[vocab]*/, int64_t vocab, int32_t target, bool* is_argmax);

Result<std::vector<ScoreResult>> score_requests(ThreadPool& pool, const Model& model,
                                                const std::vector<ScoreRequest>& requests,
                                                const ScorerOptions& options, const RowSink& sink = nullptr,
                                                ForwardObserver* observer = nullptr);

}  // namespace moepp
