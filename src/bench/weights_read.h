// A plain streaming read of a model's own weights, timed between a test's repetitions: the read
// bandwidth the row's bw_share divides by. This machine's read bandwidth drifts (up to 2x between
// runs of a few minutes), so a limit measured once at the start of a long matrix misstates later
// rows' shares; a read of the same pages, moments from the timed decode, does not.
#pragma once

#include <cstdint>
#include <vector>

#include "models/model.h"
#include "platform/thread_pool.h"

namespace moepp {

class WeightsRead {
 public:
  // Reads below this many bytes could be served partly from the last-level cache.
  static constexpr int64_t kMinBytes = int64_t{128} << 20;

  explicit WeightsRead(const Model& model);

  // Adds another model's weights to the pass (read after the first's).
  void add(const Model& model);

  // Whether the weights are large enough for a read of them to measure memory.
  bool usable() const { return bytes_ >= kMinBytes; }
  int64_t bytes() const { return bytes_; }

  // One timed pass over every matrix of every layer, each split between the pool's threads in
  // contiguous shares as decode splits a matrix; GB/s.
  double read_gb_s(ThreadPool& pool) const;

 private:
  struct Span {
    const uint8_t* data;
    int64_t bytes;
  };
  std::vector<Span> spans_;
  int64_t bytes_ = 0;
};

}  // namespace moepp
