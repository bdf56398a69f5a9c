// A ForwardObserver that maps each batch row back to its place in the text.
#include "eval/route_recorder.h"

#include <algorithm>

#include "platform/progress.h"

namespace moepp {
namespace {

class Recorder : public ForwardObserver {
 public:
  explicit Recorder(RouteRecord* record) : r_(record) {}
  std::vector<int64_t> rows;  // [batch tokens] index in the text

  void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) override {
    for (int64_t t = 0; t < plan.n_tokens; ++t)
      for (int k = 0; k < plan.top_k && k < r_->top_k; ++k) {
        const size_t at = r_->at(layer, rows[t], k);
        r_->experts[at] = plan.experts[t * plan.top_k + k];
        r_->weights[at] = plan.weights[t * plan.top_k + k];
      }
    const int64_t n_experts = plan.n_tokens > 0 ? static_cast<int64_t>(plan.scores.size()) / plan.n_tokens : 0;
    for (int64_t t = 0; t < plan.n_tokens && n_experts > 0; ++t) {
      const float* s = plan.scores.data() + t * n_experts;
      double mean = 0, sq = 0;
      for (int64_t e = 0; e < n_experts; ++e) mean += s[e];
      mean /= static_cast<double>(n_experts);
      for (int64_t e = 0; e < n_experts; ++e) sq += (s[e] - mean) * (s[e] - mean);
      r_->score_var[static_cast<size_t>(layer * r_->n_tokens + rows[t])] = static_cast<float>(sq / static_cast<double>(n_experts));
    }
  }

 private:
  RouteRecord* r_;
};

}  // namespace

Result<RouteRecord> record_routes(ThreadPool& pool, const Model& model, const std::vector<int32_t>& ids, int64_t ctx,
                                  int64_t max_batch_tokens, bool progress) {
  const ModelConfig& c = model.config();
  if (ids.empty()) return Status::Error("routes: expected at least one token, got none");
  if (ctx < 1) return Status::Error(str_format("--ctx: expected a positive window length, got %lld", static_cast<long long>(ctx)));
  RouteRecord r;
  r.n_layers = c.n_layers;
  r.n_tokens = static_cast<int64_t>(ids.size());
  for (const MoeLayerSpec& spec : c.layers) {
    r.kinds.push_back(spec.kinds);
    r.top_k = std::max(r.top_k, spec.router.top_k);
  }
  r.experts.assign(static_cast<size_t>(r.n_layers * r.n_tokens * r.top_k), -1);
  r.weights.assign(r.experts.size(), 0.0f);
  r.score_var.assign(static_cast<size_t>(r.n_layers * r.n_tokens), 0.0f);
  Recorder recorder(&r);
  KvCache cache = model.make_cache();
  std::vector<float> logits;
  Progress bar("routes", progress ? r.n_tokens : 0);
  int64_t start = 0;
  while (start < r.n_tokens) {
    Batch batch;
    recorder.rows.clear();
    std::vector<int32_t> slots;
    while (start < r.n_tokens && (batch.size() == 0 || batch.size() + std::min(ctx, r.n_tokens - start) <= max_batch_tokens)) {
      const int64_t end = std::min(start + ctx, r.n_tokens);
      const int32_t seq = cache.add_sequence();
      slots.push_back(seq);
      // Logits only for the last token of the window: the lm_head is not what we look at.
      for (int64_t i = start; i < end; ++i) {
        batch.add(ids[i], static_cast<int32_t>(i - start), seq, i + 1 == end);
        recorder.rows.push_back(i);
      }
      start = end;
    }
    MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits, &recorder));
    for (int32_t seq : slots) cache.remove_sequence(seq);
    bar.update(start);
  }
  bar.finish();
  return r;
}

}  // namespace moepp
