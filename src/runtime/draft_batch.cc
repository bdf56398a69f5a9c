#include "runtime/draft_batch.h"

#include "runtime/sampler.h"

namespace moepp {

void BatchedModelDrafter::rollback(int32_t slot, int64_t n_valid) {
  if (cache_.length(slot) > n_valid) cache_.truncate(slot, n_valid);
}

Status BatchedModelDrafter::propose(const std::vector<Request>& requests) {
  const int64_t vocab = model_.config().vocab_size;
  std::vector<const Request*> live;  // requests still drafting, in logits-row order
  Batch batch;
  for (const Request& r : requests) {
    r.tokens->clear();
    if (r.k <= 0) continue;
    const std::vector<int32_t>& c = *r.committed;
    const int64_t have = cache_.length(r.slot);
    bool ok = have < static_cast<int64_t>(c.size());
    for (int64_t i = have; ok && i < static_cast<int64_t>(c.size()); ++i) ok = c[i] >= 0 && c[i] < vocab;
    if (!ok) continue;
    for (int64_t i = have; i < static_cast<int64_t>(c.size()); ++i)
      batch.add(c[i], static_cast<int32_t>(i), r.slot, i + 1 == static_cast<int64_t>(c.size()));
    live.push_back(&r);
  }
  std::vector<float> logits;  // [live.size(), vocab]
  while (!live.empty()) {
    MOEPP_RETURN_IF_ERROR(model_.forward(pool_, batch, cache_, &logits));
    std::vector<const Request*> next;
    batch = Batch();
    for (size_t i = 0; i < live.size(); ++i) {
      const Request& r = *live[i];
      const int32_t token = argmax(logits.data() + static_cast<int64_t>(i) * vocab, vocab);
      r.tokens->push_back(token);
      if (static_cast<int>(r.tokens->size()) == r.k) continue;
      batch.add(token, static_cast<int32_t>(cache_.length(r.slot)), r.slot, true);
      next.push_back(&r);
    }
    live = std::move(next);
  }
  return Status::Ok();
}

}  // namespace moepp
