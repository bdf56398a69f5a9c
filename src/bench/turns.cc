#include "bench/turns.h"

#include <chrono>

namespace moepp {

std::vector<double> time_in_turns(const std::vector<std::function<void(int)>>& variants, const std::vector<int>& first,
                                  int copies, int calls) {
  std::vector<double> seconds(variants.size(), 0.0);
  std::vector<int> next = first;
  for (int call = 0; call < calls; ++call)
    for (size_t i = 0; i < variants.size(); ++i) {
      const size_t v = (i + static_cast<size_t>(call)) % variants.size();
      const auto t0 = std::chrono::steady_clock::now();
      variants[v](next[v]);
      seconds[v] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      next[v] = (next[v] + 1) % copies;
    }
  return seconds;
}

}  // namespace moepp
