// `moepp bench --stream`: how close the one-token matrix-vector kernels come to a plain read of
// the same memory, on one thread or shared by several as in decode, and what small pages cost.
// Decode reads every weight once per token, so its limit is the memory stream; this isolates
// the kernel from the rest of a forward pass.
// Each format gets enough copies of one random matrix to exceed the caches; the variants (the
// kernel on huge-page copies and on small-page copies, at each stream count asked for, and a
// plain read of each set) take turns call by call in one process, so the machine's drift (large
// under a hypervisor) falls on all of them alike.
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
  std::vector<int> streams;  // one-token stream counts to compare (1, 2, 4; kernels::one_token_streams);
                             // empty: the one each format's kernel walks now
  uint64_t seed = 1234;
};

struct StreamProbeRow {
  std::string weights;  // "bf16", "q8", "q4" (f32 too)
  std::string pages;    // "huge" (as the engine stores weights) or "small"
  int64_t rows = 0, cols = 0;
  int64_t matrix_bytes = 0;  // bytes of one stored matrix (values and scales, padding included)
  int copies = 0;
  int streams = 0;         // memory streams per thread the kernel walked (kernels::one_token_streams);
                           // 0 where it walks one fixed order (kernels::one_token_streams_of)
  double kernel_gb_s = 0;  // the kernel's stream
  double read_gb_s = 0;    // a plain read of the same copies
};

// Rows for each weight format named in `formats` (f32, bf16, q8, q4) and stream count, huge pages
// first. Errors: an unknown format or stream count, a shape out of range, no memory, and products
// that differ between page sizes or stream counts (they must be the same bits).
Result<std::vector<StreamProbeRow>> probe_one_token_stream(const std::vector<std::string>& formats,
                                                           const StreamProbeOptions& options);

// `moepp bench --batch-kernels`: the batch kernels (several tokens against one matrix, as a prefill's
// projections and each expert's tokens) of every SIMD kernel set the CPU has, side by side on cold
// copies of one random matrix, taking turns call by call with a plain read of the same copies.
// Each call multiplies `tokens` bf16-valued
// input rows (as under --dtype bf16) by the matrix in tasks of `task_rows` rows, the inputs
// quantised (q8/q4) or paired (bf16, where the set pairs that many tokens) once per call, as
// matmul_many does. The same calls with each task's rows in cache take their turns too: how much of
// the shorter of the arithmetic and the read the cold calls hide under the longer (on Zen 5,
// little: session 35).
struct BatchProbeOptions {
  int64_t rows = 2816;
  int64_t cols = 1024;
  int64_t copies_bytes = int64_t{256} << 20;
  int calls = 40;  // calls per set (and by the read)
  std::vector<int64_t> tokens = {128};
  int64_t task_rows = 128;
  uint64_t seed = 1234;
};

struct BatchProbeRow {
  std::string weights;  // "f32", "bf16", "q8", "q4"
  int64_t tokens = 0;
  std::string kernels;  // the set's name (KernelSet::isa)
  int64_t rows = 0, cols = 0;
  double gflop_s = 0;   // 2 x rows x cols x tokens per call
  double gb_s = 0;      // the stored matrix's bytes per call
  double read_gb_s = 0; // a plain read of the same copies, taking its turns with the sets
  // The same calls with each task's rows in cache (each task run twice in a row, the second timed,
  // the inputs' preparation included): the arithmetic alone, taking its turns with the others.
  double cached_gflop_s = 0;
  // How much of the shorter of the two (cached arithmetic, plain read) the cold call hides under
  // the longer: (cached + read - cold) / min(cached, read), seconds a call. 1: the longer of the
  // two alone (they overlap fully); 0: the two added up; below 0 slower than that, above 1 noise.
  double overlap = 0;
};

// Rows for each format and token count, one per SIMD set (the scalar twin where it is the only
// one). Errors: an unknown format, a shape or token count out of range, no memory, and sets whose
// products differ (they must be the same bits).
Result<std::vector<BatchProbeRow>> probe_batch_kernels(const std::vector<std::string>& formats,
                                                       const BatchProbeOptions& options);

}  // namespace moepp
