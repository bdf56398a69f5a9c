// `moepp bench --stream`: how close the one-token matrix-vector kernels come to a plain read of
// the same memory, on one thread or shared by several as in decode, and what small pages cost.
// Decode reads every weight once per token, so its limit is the memory stream; this isolates
// the kernel from the rest of a forward pass.
// Each format gets enough copies of one random matrix to exceed the caches; four variants
// (the kernel on huge-page copies, on small-page copies, and a plain read of each) take turns
// call by call in one process, so the machine's drift (large under a hypervisor) falls on all
// of them alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace moepp {

struct StreamProbeOptions {
  int64_t rows = 2816;  // mixtral-1.8b's gate/up projections: [2816, 1024]
  int64_t cols = 1024;
  int64_t copies_bytes = int64_t{256} << 20;  // the copies of a set fill at least this much
  int calls = 400;                            // calls per variant
  int64_t task_rows = 0;  // > 0: the kernel runs over blocks of this many rows, pulled by the
                          // threads from a counter as decode's (expert, row block) tasks are;
                          // 0: one block per thread
  int threads = 1;        // a ThreadPool of this many threads shares each call (the read too)
  uint64_t seed = 1234;
};

struct StreamProbeRow {
  std::string weights;  // "bf16", "q8", "q4" (f32 too)
  std::string pages;    // "huge" (as the engine stores weights) or "small"
  int64_t rows = 0, cols = 0;
  int64_t matrix_bytes = 0;  // bytes of one stored matrix (values and scales, padding included)
  int copies = 0;
  double kernel_gb_s = 0;  // the kernel's stream
  double read_gb_s = 0;    // a plain read of the same copies
};

// Rows for each weight format named in `formats` (f32, bf16, q8, q4), huge pages first. Errors:
// an unknown format, a shape out of range, no memory, and small-page copies whose products
// differ from the huge-page ones (they must be the same bits).
Result<std::vector<StreamProbeRow>> probe_one_token_stream(const std::vector<std::string>& formats,
                                                           const StreamProbeOptions& options);

}  // namespace moepp
