#include "server/stop_strings.h"

#include <algorithm>

namespace moepp::server {

std::string StopStringFilter::push(const std::string& text, bool* stopped) {
  *stopped = stopped_;
  if (stopped_) return {};
  pending_ += text;
  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, pending_.find(stop));
  if (first != std::string::npos) {
    stopped_ = *stopped = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail of pending_ that a stop string begins with. Stop strings are
  // valid UTF-8, so the cut falls on a character boundary.
  size_t hold = 0;
  for (const auto& stop : stops_)
    for (size_t len = std::min(stop.size() - 1, pending_.size()); len > hold; --len)
      if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringFilter::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

}  // namespace moepp::server
