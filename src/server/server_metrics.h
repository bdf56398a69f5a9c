// Counters the server exposes at /metrics in the Prometheus text format: requests by outcome,
// tokens, queue and batch occupancy, generation speed, and how often each expert was chosen.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace moepp::server {

class ServerMetrics {
 public:
  // expert_kinds: per MoE layer, the kind name of each expert ("ffn", "zero", "copy", "constant").
  explicit ServerMetrics(std::vector<std::vector<std::string>> expert_kinds);

  void count_request(const std::string& endpoint, int status);
  void add_prompt_tokens(int64_t n) { prompt_tokens_ += n; }
  void add_generated_tokens(int64_t n) { generated_tokens_ += n; }
  void set_queue(int64_t waiting, int64_t active) { waiting_ = waiting; active_ = active; }
  // One forward step: its generated tokens and its duration feed the tokens/s gauge.
  void record_step(int64_t generated, double seconds);
  // experts: [n_tokens, top_k] choices of MoE layer `moe_layer` in one step.
  void add_routing(int64_t moe_layer, const int32_t* experts, int64_t n);

  std::string render_prometheus() const;

 private:
  std::vector<std::vector<std::string>> expert_kinds_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (endpoint, status) -> count
  std::vector<std::vector<int64_t>> expert_counts_;           // [moe_layer][expert]
  double window_tokens_ = 0, window_seconds_ = 0;             // recent decode speed (decayed)
  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0}, waiting_{0}, active_{0};
};

}  // namespace moepp::server
