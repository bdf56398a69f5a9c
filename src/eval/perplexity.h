// Sliding-window perplexity as Hugging Face's perplexity guide computes it (context length,
// stride; no token is scored twice), with the standard error of the mean NLL.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "eval/scorer.h"

namespace moepp {

// One window: tokens [begin, end) of the text; global positions [score_from, end) are scored.
struct Window {
  int64_t begin = 0, end = 0, score_from = 0;
};

// HF: for begin in 0, stride, ...: end = min(begin + ctx, n); score [prev_end, end) minus the
// window's first token (it has no context in the window: with stride == ctx, HF's guide leaves
// one token per window unscored, and so do we); stop once end == n. Needs 1 <= stride <= ctx.
Result<std::vector<Window>> sliding_windows(int64_t n_tokens, int64_t ctx, int64_t stride);

struct NllSummary {
  int64_t n = 0;            // scored tokens
  double mean_nll = 0.0;    // nats per token
  double nll_stderr = 0.0;  // standard error of the mean: sample std / sqrt(n)
  double ppl = 0.0;         // exp(mean_nll)
  double ppl_stderr = 0.0;  // delta method: ppl * nll_stderr
};
NllSummary summarize_nll(const std::vector<double>& nll);

struct PerplexityResult {
  std::vector<double> nll;        // [n scored] in text order (n_tokens - 1 when stride < ctx)
  std::vector<uint8_t> greedy;    // [n scored]
  int64_t n_windows = 0;
  NllSummary summary;
};

// The sink sees the rows in text order.
Result<PerplexityResult> compute_perplexity(ThreadPool& pool, const Model& model, const std::vector<int32_t>& ids,
                                            int64_t ctx, int64_t stride, const ScorerOptions& options,
                                            const RowSink& sink = nullptr);

}  // namespace moepp
