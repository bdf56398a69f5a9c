// Packs requests greedily in order into batches of at most max_batch_tokens fed tokens; every
// request gets a fresh KV slot that is freed after its batch.
#include "eval/scorer.h"

#include <cmath>

#include "platform/progress.h"

namespace moepp {

double ScoreResult::sum() const {
  double s = 0.0;
  for (double v : logprobs) s += v;
  return s;
}

bool ScoreResult::all_greedy() const {
  for (uint8_t g : greedy)
    if (g == 0) return false;
  return true;
}

double log_softmax_at(const float* logits, int64_t vocab, int32_t target, bool* is_argmax) {
  float max_v = logits[0];
  int64_t arg = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > max_v) max_v = logits[i], arg = i;
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_v);
  if (is_argmax != nullptr) *is_argmax = arg == target;
  return static_cast<double>(logits[target]) - max_v - std::log(sum);
}

Result<std::vector<ScoreResult>> score_requests(ThreadPool& pool, const Model& model,
                                                const std::vector<ScoreRequest>& requests,
                                                const ScorerOptions& options, const RowSink& sink,
                                                ForwardObserver* observer) {
  const int64_t vocab = model.config().vocab_size;
  for (size_t r = 0; r < requests.size(); ++r) {
    const ScoreRequest& q = requests[r];
    const int64_t n = static_cast<int64_t>(q.tokens.size());
    if (q.score_from < 1 || q.score_from > n)
      return Status::Error(str_format("request %zu: first scored position %lld, expected [1, %lld]", r,
                                      static_cast<long long>(q.score_from), static_cast<long long>(n)));
    for (int32_t t : q.tokens)
      if (t < 0 || t >= vocab)
        return Status::Error(str_format("request %zu: token id %d out of range, expected [0, %lld)", r, t,
                                        static_cast<long long>(vocab)));
  }
  std::vector<ScoreResult> results(requests.size());
  KvCache cache = model.make_cache();
  Progress progress(options.progress_label ? options.progress_label : "", options.progress_label ? static_cast<int64_t>(requests.size()) : 0);
  std::vector<float> logits;
  size_t next = 0;
  while (next < requests.size()) {
    // [first, last) of this batch: at least one request, then while they fit.
    const size_t first = next;
    int64_t fed = 0;
    while (next < requests.size()) {
      const int64_t len = static_cast<int64_t>(requests[next].tokens.size()) - 1;
      if (next > first && fed + len > options.max_batch_tokens) break;
      fed += len;
      ++next;
    }
    Batch batch;
    std::vector<int32_t> slots;
    for (size_t r = first; r < next; ++r) {
      const ScoreRequest& q = requests[r];
      const int32_t seq = cache.add_sequence();
      slots.push_back(seq);
      // Feed tokens [0, n-1); the row at position p predicts token p+1.
      for (int64_t p = 0; p + 1 < static_cast<int64_t>(q.tokens.size()); ++p)
        batch.add(q.tokens[p], static_cast<int32_t>(p), seq, p + 1 >= q.score_from);
    }
    if (batch.size() > 0) MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits, observer));
    int64_t row = 0;
    for (size_t r = first; r < next; ++r) {
      const ScoreRequest& q = requests[r];
      ScoreResult& out = results[r];
      const int64_t n = static_cast<int64_t>(q.tokens.size());
      for (int64_t p = q.score_from; p < n; ++p, ++row) {
        const float* lg = logits.data() + row * vocab;
        bool greedy = false;
        out.logprobs.push_back(log_softmax_at(lg, vocab, q.tokens[p], &greedy));
        out.greedy.push_back(greedy ? 1 : 0);
        if (sink) MOEPP_RETURN_IF_ERROR(sink(static_cast<int64_t>(r), p - q.score_from, q.tokens[p], lg));
      }
    }
    for (int32_t seq : slots) cache.remove_sequence(seq);
    progress.update(static_cast<int64_t>(next));
  }
  progress.finish();
  return results;
}

}  // namespace moepp
