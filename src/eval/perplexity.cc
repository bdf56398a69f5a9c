// Windows become independent score requests, packed by the scorer.
#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

namespace moepp {

Result<std::vector<Window>> sliding_windows(int64_t n_tokens, int64_t ctx, int64_t stride) {
  if (ctx < 2) return Status::Error(str_format("perplexity: context length %lld, expected at least 2", static_cast<long long>(ctx)));
  if (stride < 1 || stride > ctx)
    return Status::Error(str_format("perplexity: stride %lld, expected 1 to the context length %lld",
                                    static_cast<long long>(stride), static_cast<long long>(ctx)));
  if (n_tokens < 2)
    return Status::Error(str_format("perplexity: %lld tokens, expected at least 2", static_cast<long long>(n_tokens)));
  std::vector<Window> windows;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n_tokens; begin += stride) {
    const int64_t end = std::min(begin + ctx, n_tokens);
    windows.push_back({begin, end, std::max(prev_end, begin + 1)});
    prev_end = end;
    if (end == n_tokens) break;
  }
  return windows;
}

NllSummary summarize_nll(const std::vector<double>& nll) {
  NllSummary s;
  s.n = static_cast<int64_t>(nll.size());
  if (s.n == 0) return s;
  double sum = 0.0;
  for (double v : nll) sum += v;
  s.mean_nll = sum / static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0.0;
    for (double v : nll) ss += (v - s.mean_nll) * (v - s.mean_nll);
    s.nll_stderr = std::sqrt(ss / static_cast<double>(s.n - 1) / static_cast<double>(s.n));
  }
  s.ppl = std::exp(s.mean_nll);
  s.ppl_stderr = s.ppl * s.nll_stderr;
  return s;
}

Result<PerplexityResult> compute_perplexity(ThreadPool& pool, const Model& model, const std::vector<int32_t>& ids,
                                            int64_t ctx, int64_t stride, const ScorerOptions& options,
                                            const RowSink& sink) {
  MOEPP_ASSIGN_OR_RETURN(std::vector<Window> windows, sliding_windows(static_cast<int64_t>(ids.size()), ctx, stride));
  std::vector<ScoreRequest> requests;
  for (const Window& w : windows) {
    ScoreRequest q;
    q.tokens.assign(ids.begin() + w.begin, ids.begin() + w.end);
    q.score_from = w.score_from - w.begin;
    requests.push_back(std::move(q));
  }
  MOEPP_ASSIGN_OR_RETURN(std::vector<ScoreResult> scored, score_requests(pool, model, requests, options, sink));
  PerplexityResult r;
  r.n_windows = static_cast<int64_t>(windows.size());
  for (const ScoreResult& s : scored) {
    for (double lp : s.logprobs) r.nll.push_back(-lp);
    r.greedy.insert(r.greedy.end(), s.greedy.begin(), s.greedy.end());
  }
  r.summary = summarize_nll(r.nll);
  return r;
}

}  // namespace moepp
