// `moepp bench --attention`: how close one decode step's attention over a deep KV cache comes to
// a plain read of the same keys and values. After a few thousand tokens the cache is read as
// often as the weights (one layer of mixtral-1.8b at 2048 tokens: 2 MiB in bf16, more than its
// q4 attention weights), so decode at depth is bounded by this step as much as by the matmuls.
// Cold copies of a layer's cache, the step and the read taking turns call by call, as in
// `bench --stream`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace moepp {

struct AttentionProbeOptions {
  int64_t kv_heads = 4;  // mixtral-1.8b: 4 kv heads of 64, 4 query heads each
  int64_t group = 4;     // query heads per kv head
  int64_t head_dim = 64;
  int64_t depth = 2048;  // cached positions each query sees
  int64_t copies_bytes = int64_t{256} << 20;  // the copies of a cache type fill at least this much
  int calls = 200;                            // calls per variant
  int threads = 1;  // a ThreadPool of this many threads shares each layer's kv heads, as decode does
  uint64_t seed = 1234;
};

struct AttentionProbeRow {
  std::string cache;  // "bf16", "f32" or "q8"
  int64_t layer_bytes = 0;  // keys and values of one layer at `depth`
  int copies = 0;
  double us_per_layer = 0;  // the attention step over all kv heads
  double kernel_gb_s = 0;   // the cache bytes over that time
  double read_gb_s = 0;     // a plain read of the same copies
};

// Rows for each cache type named in `caches` (bf16, f32, q8). Errors: an unknown type, a shape out
// of range, no memory.
Result<std::vector<AttentionProbeRow>> probe_decode_attention(const std::vector<std::string>& caches,
                                                              const AttentionProbeOptions& options);

}  // namespace moepp
