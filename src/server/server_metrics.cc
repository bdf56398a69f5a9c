#include "server/server_metrics.h"

#include <sstream>

namespace moepp::server {

ServerMetrics::ServerMetrics(std::vector<std::vector<std::string>> expert_kinds)
    : expert_kinds_(std::move(expert_kinds)) {
  for (const auto& layer : expert_kinds_) expert_counts_.emplace_back(layer.size(), 0);
}

void ServerMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::record_step(int64_t generated, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Exponential decay over roughly the last hundred steps: a gauge of current speed, not a
  // lifetime average that hides a slowdown.
  constexpr double kKeep = 0.99;
  window_tokens_ = window_tokens_ * kKeep + static_cast<double>(generated);
  window_seconds_ = window_seconds_ * kKeep + seconds;
}

void ServerMetrics::add_routing(int64_t moe_layer, const int32_t* experts, int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (moe_layer < 0 || moe_layer >= static_cast<int64_t>(expert_counts_.size())) return;
  auto& counts = expert_counts_[static_cast<size_t>(moe_layer)];
  for (int64_t i = 0; i < n; ++i)
    if (experts[i] >= 0 && experts[i] < static_cast<int32_t>(counts.size())) ++counts[static_cast<size_t>(experts[i])];
}

std::string ServerMetrics::render_prometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream o;
  o << "# HELP moepp_requests_total HTTP requests by endpoint and status code.\n"
       "# TYPE moepp_requests_total counter\n";
  for (const auto& [key, count] : requests_)
    o << "moepp_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << count << "\n";
  o << "# HELP moepp_prompt_tokens_total Prompt tokens processed.\n# TYPE moepp_prompt_tokens_total counter\n"
    << "moepp_prompt_tokens_total " << prompt_tokens_.load() << "\n"
    << "# HELP moepp_generated_tokens_total Tokens generated.\n# TYPE moepp_generated_tokens_total counter\n"
    << "moepp_generated_tokens_total " << generated_tokens_.load() << "\n"
    << "# HELP moepp_queue_waiting Requests waiting for a slot.\n# TYPE moepp_queue_waiting gauge\n"
    << "moepp_queue_waiting " << waiting_.load() << "\n"
    << "# HELP moepp_sequences_active Sequences being decoded.\n# TYPE moepp_sequences_active gauge\n"
    << "moepp_sequences_active " << active_.load() << "\n"
    << "# HELP moepp_generation_tokens_per_second Recent generation speed over all sequences.\n"
       "# TYPE moepp_generation_tokens_per_second gauge\n"
    << "moepp_generation_tokens_per_second " << (window_seconds_ > 0 ? window_tokens_ / window_seconds_ : 0.0) << "\n"
    << "# HELP moepp_expert_selections_total Times each expert was chosen (all tokens, prompt included).\n"
       "# TYPE moepp_expert_selections_total counter\n";
  for (size_t l = 0; l < expert_counts_.size(); ++l)
    for (size_t e = 0; e < expert_counts_[l].size(); ++e)
      o << "moepp_expert_selections_total{layer=\"" << l << "\",expert=\"" << e << "\",kind=\"" << expert_kinds_[l][e]
        << "\"} " << expert_counts_[l][e] << "\n";
  return o.str();
}

}  // namespace moepp::server
