// Greedy drafts for many sequences from one draft model, with every forward pass batched across
// the sequences: one catch-up pass over each sequence's unseen committed tokens, then one pass
// per draft position holding one token of every sequence still drafting. The draft model's
// weights are read once per pass instead of once per sequence (the server's `--draft` path).
#pragma once

#include <cstdint>
#include <vector>

#include "models/model.h"
#include "platform/thread_pool.h"

namespace moepp {

class BatchedModelDrafter {
 public:
  BatchedModelDrafter(const Model& model, ThreadPool& pool) : model_(model), pool_(pool), cache_(model.make_cache()) {}

  int32_t add_sequence() { return cache_.add_sequence(); }
  void remove_sequence(int32_t slot) { cache_.remove_sequence(slot); }
  // The target kept a prefix: the first n_valid committed tokens of the sequence are final.
  void rollback(int32_t slot, int64_t n_valid);

  struct Request {
    int32_t slot;
    const std::vector<int32_t>* committed;  // prompt + output so far (at least one token new to the drafter)
    int k;                                  // drafts wanted (0: none)
    std::vector<int32_t>* tokens;           // (out) the k greedy drafts
  };
  // All requests' drafts. A request whose committed tokens are invalid for the draft model gets
  // no drafts (the others still do); errors of the forward pass itself are returned.
  Status propose(const std::vector<Request>& requests);

 private:
  const Model& model_;
  ThreadPool& pool_;
  KvCache cache_;
};

}  // namespace moepp
