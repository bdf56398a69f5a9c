// Continuous batching: one worker thread runs the model over every active sequence at once.
// Between forward steps, waiting requests take free slots and finished or cancelled ones leave
// (their KV cache freed). Each step holds one decode token per generating sequence plus chunks
// of new prompts, so MoE layers read each chosen expert's weights once for all of them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "models/model.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"
#include "runtime/draft_batch.h"
#include "server/request_stream.h"
#include "server/server_metrics.h"

namespace moepp::server {

struct EngineOptions {
  int parallel = 4;           // sequences decoded together (slots)
  int max_queue = 32;         // requests waiting for a slot beyond those
  int64_t step_tokens = 256;  // tokens per forward step: decode tokens first, then prompt chunks
  // Speculative decoding (`serve --draft`): a drafter per sequence; each step verifies its K
  // proposals in the same batched pass as everything else. Null: plain decoding.
  std::function<std::unique_ptr<Drafter>()> make_drafter;
  // A draft model instead: one BatchedModelDrafter drafts for every sequence, each draft
  // position one forward pass over all of them (takes precedence over make_drafter).
  const Model* draft_model = nullptr;
  int draft_n = 4;            // K to start with; adapted per sequence to its acceptance
};

struct EngineRequest {
  std::vector<int32_t> prompt;  // [n_prompt] token ids, BOS included where the model wants it
  int64_t max_tokens = 16;      // generated tokens at most (stop tokens not counted)
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // end-of-sequence tokens: generation stops, the token is not sent
  int top_logprobs = -1;          // -1: no log-probabilities; 0: the chosen token's; k: also the k best
  bool routes = false;            // send the experts chosen at the position that predicted each token
};

class BatchEngine {
 public:
  BatchEngine(const Model& model, ThreadPool& pool, const EngineOptions& options, ServerMetrics* metrics);
  ~BatchEngine();
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  // Queues a request; null when the queue is full (the caller answers 503).
  std::shared_ptr<RequestStream> try_submit(EngineRequest request);
  const EngineOptions& options() const { return options_; }

 private:
  struct Sequence {
    EngineRequest request;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<Sampler> sampler;
    int32_t slot = -1;
    int64_t prefilled = 0;   // prompt tokens already in the cache
    int64_t generated = 0;
    int32_t last_token = -1;  // the token to feed next while decoding
    std::vector<int32_t> committed;  // prompt + generated tokens (what drafters continue)
    std::unique_ptr<Drafter> drafter;
    int32_t draft_slot = -1;         // its slot in batched_drafter_
    int draft_n = 0;
    std::vector<int32_t> drafts;     // this step's proposals
  };
  class RouteCollector;

  void run();
  void admit_waiting();                // moves waiting requests into free slots
  void drop_cancelled();
  void finish(Sequence& seq, FinishReason reason, const std::string& error = {});
  void step();                         // one forward pass over the active sequences

  const Model& model_;
  ThreadPool& pool_;
  EngineOptions options_;
  ServerMetrics* metrics_;
  KvCache cache_;
  std::unique_ptr<BatchedModelDrafter> batched_drafter_;  // with options.draft_model

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // guarded by mutex_
  bool stop_ = false;                              // guarded by mutex_
  // Sequences holding a slot, decremented the moment one finishes (before its client can send
  // the next request), so try_submit never refuses a request for a slot already free.
  std::atomic<int64_t> live_{0};
  std::vector<std::unique_ptr<Sequence>> active_;  // worker thread only
  std::thread worker_;
};

}  // namespace moepp::server
