#include "server/batch_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace moepp::server {

// Collects routing for /metrics (every token) and for the requests that asked for routes
// (only the positions that produce logits).
class BatchEngine::RouteCollector : public ForwardObserver {
 public:
  RouteCollector(ServerMetrics* metrics, const std::vector<int64_t>& wanted /*batch indices*/)
      : metrics_(metrics), wanted_(wanted), routes_(wanted.size()) {}
  void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) override {
    if (metrics_ != nullptr) metrics_->add_routing(layer, plan.experts.data(), plan.n_tokens * plan.top_k);
    for (size_t i = 0; i < wanted_.size(); ++i) {
      if (wanted_[i] < 0) continue;
      const int32_t* e = plan.experts.data() + wanted_[i] * plan.top_k;
      routes_[i].insert(routes_[i].end(), e, e + plan.top_k);
    }
  }
  std::vector<int32_t>& routes(size_t i) { return routes_[i]; }

 private:
  ServerMetrics* metrics_;
  const std::vector<int64_t>& wanted_;
  std::vector<std::vector<int32_t>> routes_;  // [wanted][n_layers * top_k]
};

BatchEngine::BatchEngine(const Model& model, ThreadPool& pool, const EngineOptions& options, ServerMetrics* metrics)
    : model_(model), pool_(pool), options_(options), metrics_(metrics), cache_(model.make_cache()) {
  if (options_.draft_model != nullptr) batched_drafter_ = std::make_unique<BatchedModelDrafter>(*options_.draft_model, pool_);
  worker_ = std::thread([this] { run(); });
}

BatchEngine::~BatchEngine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

std::shared_ptr<RequestStream> BatchEngine::try_submit(EngineRequest request) {
  auto seq = std::make_unique<Sequence>();
  seq->stream = std::make_shared<RequestStream>();
  seq->stream->set_prompt_tokens(static_cast<int64_t>(request.prompt.size()));
  seq->sampler = std::make_unique<Sampler>(request.sampling);
  seq->request = std::move(request);
  std::shared_ptr<RequestStream> stream = seq->stream;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Requests that fit in free slots do not count against the queue.
    const int64_t free_slots = std::max<int64_t>(0, options_.parallel - live_.load());
    if (static_cast<int64_t>(waiting_.size()) >= options_.max_queue + free_slots) return nullptr;
    waiting_.push_back(std::move(seq));
  }
  wake_.notify_all();
  return stream;
}

void BatchEngine::admit_waiting() {
  while (!waiting_.empty() && static_cast<int>(active_.size()) < options_.parallel) {
    std::unique_ptr<Sequence> seq = std::move(waiting_.front());
    waiting_.pop_front();
    if (seq->stream->cancelled()) {
      seq->stream->finish(FinishReason::kCancelled);
      continue;
    }
    seq->slot = cache_.add_sequence();
    ++live_;
    if (batched_drafter_) {
      seq->draft_slot = batched_drafter_->add_sequence();
      seq->draft_n = std::max(1, options_.draft_n);
    } else if (options_.make_drafter) {
      seq->drafter = options_.make_drafter();
      seq->draft_n = std::max(1, options_.draft_n);
    }
    active_.push_back(std::move(seq));
  }
  if (metrics_ != nullptr) metrics_->set_queue(static_cast<int64_t>(waiting_.size()), static_cast<int64_t>(active_.size()));
}

void BatchEngine::finish(Sequence& seq, FinishReason reason, const std::string& error) {
  if (seq.slot >= 0) {
    cache_.remove_sequence(seq.slot);
    --live_;
  }
  seq.slot = -1;
  if (seq.draft_slot >= 0) batched_drafter_->remove_sequence(seq.draft_slot);
  seq.draft_slot = -1;
  seq.stream->finish(reason, error);
}

void BatchEngine::drop_cancelled() {
  for (auto& seq : active_)
    if (seq->stream->cancelled()) finish(*seq, FinishReason::kCancelled);
}

void BatchEngine::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !waiting_.empty() || !active_.empty(); });
      if (stop_) break;
      admit_waiting();
    }
    drop_cancelled();
    step();
    // Finished sequences leave between steps; their slots take waiting requests next round.
    active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->slot < 0; }),
                  active_.end());
    std::lock_guard<std::mutex> lock(mutex_);
    if (metrics_ != nullptr) metrics_->set_queue(static_cast<int64_t>(waiting_.size()), static_cast<int64_t>(active_.size()));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& seq : active_) finish(*seq, FinishReason::kCancelled, "server shutting down");
  for (auto& seq : waiting_) seq->stream->finish(FinishReason::kCancelled, "server shutting down");
}

namespace {

// log p of `token` and the `k` most likely tokens, from raw logits (temperature 1).
void log_probs(const float* logits /*[vocab]*/, int64_t vocab, int32_t token, int k, TokenEvent* event) {
  const float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v] - max));
  const float log_z = max + static_cast<float>(std::log(sum));
  event->logprob = logits[token] - log_z;
  if (k <= 0) return;
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  for (int64_t v = 0; v < vocab; ++v) ids[static_cast<size_t>(v)] = static_cast<int32_t>(v);
  const int64_t kk = std::min<int64_t>(k, vocab);
  std::partial_sort(ids.begin(), ids.begin() + kk, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  for (int64_t i = 0; i < kk; ++i) event->top.emplace_back(ids[static_cast<size_t>(i)], logits[ids[static_cast<size_t>(i)]] - log_z);
}

}  // namespace

void BatchEngine::step() {
  using clock = std::chrono::steady_clock;
  Batch batch;
  // Rows of the logits this step returns, in batch order: one per decode token (plus one per
  // draft), one per prompt whose last chunk is in the batch.
  struct Output {
    Sequence* seq;
    int64_t row;    // first row in the logits
    int64_t rows;   // 1 + drafts
  };
  std::vector<Output> outputs;
  std::vector<int64_t> route_index;  // per logits row: its batch index, -1 if routes not wanted
  auto add_rows = [&](Sequence* seq, int64_t first_batch_index, int64_t rows) {
    outputs.push_back({seq, static_cast<int64_t>(route_index.size()), rows});
    for (int64_t i = 0; i < rows; ++i) route_index.push_back(seq->request.routes ? first_batch_index + i : -1);
  };
  auto decoding = [&](const Sequence& seq) {
    return seq.slot >= 0 && seq.prefilled >= static_cast<int64_t>(seq.request.prompt.size());
  };
  auto draft_room = [&](const Sequence& seq) {
    return static_cast<int>(std::min<int64_t>(seq.draft_n, seq.request.max_tokens - seq.generated - 1));
  };
  if (batched_drafter_) {  // every sequence's drafts in shared forward passes of the draft model
    std::vector<BatchedModelDrafter::Request> requests;
    for (auto& seq : active_)
      if (decoding(*seq)) requests.push_back({seq->draft_slot, &seq->committed, draft_room(*seq), &seq->drafts});
    if (!batched_drafter_->propose(requests).ok())
      for (auto& r : requests) r.tokens->clear();  // drafting failed: plain decoding this step
  }
  // Decode tokens first: a generating sequence never waits behind a long prompt.
  for (auto& seq : active_) {
    if (!decoding(*seq)) continue;
    if (!batched_drafter_) seq->drafts.clear();
    if (seq->drafter) {
      std::vector<std::vector<float>> unused;  // the engine's drafters are deterministic (one-hot q)
      Status s = seq->drafter->propose(seq->committed, draft_room(*seq), &seq->drafts, &unused);
      if (!s.ok()) seq->drafts.clear();
      const int64_t vocab = model_.config().vocab_size;
      for (int32_t d : seq->drafts)
        if (d < 0 || d >= vocab) seq->drafts.clear();
    }
    const int64_t first = batch.size();
    int32_t pos = static_cast<int32_t>(cache_.length(seq->slot));
    batch.add(seq->last_token, pos++, seq->slot, true);
    for (int32_t d : seq->drafts) batch.add(d, pos++, seq->slot, true);
    add_rows(seq.get(), first, 1 + static_cast<int64_t>(seq->drafts.size()));
  }
  int64_t budget = std::max<int64_t>(options_.step_tokens - batch.size(), batch.size() == 0 ? options_.step_tokens : 0);
  int64_t prompt_tokens = 0;
  for (auto& seq : active_) {
    const int64_t n = static_cast<int64_t>(seq->request.prompt.size());
    if (seq->slot < 0 || seq->prefilled >= n || budget <= 0) continue;
    const int64_t take = std::min(n - seq->prefilled, budget);
    for (int64_t i = 0; i < take; ++i) {
      const int64_t pos = seq->prefilled + i;
      const bool last = pos + 1 == n;
      batch.add(seq->request.prompt[static_cast<size_t>(pos)], static_cast<int32_t>(pos), seq->slot, last);
      if (last) add_rows(seq.get(), batch.size() - 1, 1);
    }
    seq->prefilled += take;
    budget -= take;
    prompt_tokens += take;
  }
  if (batch.size() == 0) return;

  RouteCollector collector(metrics_, route_index);
  std::vector<float> logits;
  const auto t0 = clock::now();
  Status status = model_.forward(pool_, batch, cache_, &logits, &collector);
  const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
  if (!status.ok()) {
    for (auto& seq : active_) finish(*seq, FinishReason::kError, status.message());
    return;
  }
  const int64_t vocab = model_.config().vocab_size;
  int64_t generated = 0;
  for (const Output& out : outputs) {
    Sequence& seq = *out.seq;
    const float* rows = logits.data() + out.row * vocab;
    // Tokens this step gives the sequence: plain decoding one; with drafts the kept drafts and
    // the target's own token after them (row i of rows predicts token i).
    std::vector<int32_t> tokens;
    if (out.rows > 1) {
      int32_t next = -1;
      const int64_t kept = accept_drafts(*seq.sampler, rows, vocab, seq.drafts, {}, &next);
      tokens.assign(seq.drafts.begin(), seq.drafts.begin() + kept);
      tokens.push_back(next);
      // The cache holds the committed tokens but the last, the last, and the drafts: keep the
      // committed ones and the kept drafts.
      cache_.truncate(seq.slot, static_cast<int64_t>(seq.committed.size()) + kept);
      const int64_t valid = static_cast<int64_t>(seq.committed.size()) + kept;
      if (seq.draft_slot >= 0) batched_drafter_->rollback(seq.draft_slot, valid);
      else seq.drafter->rollback(valid);
      seq.draft_n = next_draft_n(seq.draft_n, static_cast<int64_t>(seq.drafts.size()), kept, 8);
    } else {
      tokens.push_back(seq.sampler->sample(rows, vocab));
      if (seq.committed.empty()) seq.committed = seq.request.prompt;  // first token: the prompt is in
    }
    for (size_t i = 0; i < tokens.size() && seq.slot >= 0; ++i) {
      const int32_t token = tokens[i];
      const auto& stops = seq.request.stop_ids;
      if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
        finish(seq, FinishReason::kStop);
        break;
      }
      TokenEvent event;
      event.id = token;
      const float* row = rows + static_cast<int64_t>(i) * vocab;
      if (seq.request.top_logprobs >= 0) log_probs(row, vocab, token, seq.request.top_logprobs, &event);
      if (seq.request.routes) event.experts = std::move(collector.routes(static_cast<size_t>(out.row) + i));
      seq.stream->push(std::move(event));
      seq.last_token = token;
      seq.committed.push_back(token);
      ++seq.generated;
      ++generated;
      if (seq.generated >= seq.request.max_tokens) finish(seq, FinishReason::kLength);
    }
  }
  if (metrics_ != nullptr) {
    metrics_->add_prompt_tokens(prompt_tokens);
    metrics_->add_generated_tokens(generated);
    metrics_->record_step(generated, seconds);
  }
}

}  // namespace moepp::server
