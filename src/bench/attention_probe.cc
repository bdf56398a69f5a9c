// One decode step's attention (layers/attention.h: attend_kv_head, the engine's own step) over
// cold copies of a layer's KV cache, against a plain read of the same bytes.
#include "bench/attention_probe.h"

#include <algorithm>
#include <functional>
#include <type_traits>

#include "bench/machine.h"
#include "bench/turns.h"
#include "layers/attention.h"
#include "ops/kv_quant.h"
#include "platform/thread_pool.h"
#include "tensor/dtype.h"
#include "tensor/random_fill.h"

namespace moepp {
namespace {

volatile uint64_t g_read_sink = 0;  // the plain reads' sums, so they are not optimised away

// One cache type's row (T: float, uint16_t for bf16, int8_t for q8). A layer's cache is
// head-major as in KvCache: [k, v][kv head] blocks of [position][head_dim] values, followed in a
// q8 block (from the next 64 bytes) by their [position][kv_scale_groups(head_dim)] scales; copies
// of it lie back to back.
template <class T>
AttentionProbeRow probe_cache(const std::string& name, const AttentionProbeOptions& o) {
  constexpr bool kBf16 = std::is_same_v<T, uint16_t>, kQ8 = std::is_same_v<T, int8_t>;
  const int64_t head_elems = o.depth * o.head_dim;  // one kv head's keys (or values)
  const int64_t groups = kv_scale_groups(o.head_dim);
  // A q8 block's scales start 64-byte aligned after its values, as in KvCache.
  const int64_t values_bytes = kQ8 ? (head_elems + 63) / 64 * 64 : head_elems * static_cast<int64_t>(sizeof(T));
  const int64_t head_bytes = values_bytes + (kQ8 ? o.depth * groups * 4 : 0);
  const int64_t layer_bytes = 2 * o.kv_heads * head_bytes;
  const int copies = static_cast<int>(std::clamp<int64_t>((o.copies_bytes + layer_bytes - 1) / layer_bytes, 2, 4096));
  std::vector<uint8_t> cache(static_cast<size_t>(layer_bytes * copies));  // [copies, layer]
  const int64_t blocks = 2 * o.kv_heads * copies;
  if constexpr (kQ8) {  // random normal rows, quantised as the cache stores them
    std::vector<float> rows(static_cast<size_t>(head_elems));
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* block = cache.data() + b * head_bytes;
      fill_random_normal(o.seed + static_cast<uint64_t>(b), 0.0f, 1.0f, DType::kF32, rows.data(), head_elems);
      for (int64_t pos = 0; pos < o.depth; ++pos)
        quantize_kv_row(&rows[pos * o.head_dim], o.head_dim, reinterpret_cast<int8_t*>(block) + pos * o.head_dim,
                        reinterpret_cast<float*>(block + values_bytes) + pos * groups);
    }
  } else {
    fill_random_normal(o.seed, 0.0f, 1.0f, kBf16 ? DType::kBF16 : DType::kF32, cache.data(), head_elems * blocks);
  }
  // Queries as a bf16 forward has them; a bf16 cache belongs to a bf16 forward.
  const int64_t q_width = o.kv_heads * o.group * o.head_dim;
  std::vector<float> q(static_cast<size_t>(q_width)), out(q.size());  // [kv head][group][head_dim]
  fill_random_normal(o.seed + 1, 0.0f, 1.0f, DType::kF32, q.data(), q_width);
  for (float& v : q) v = round_bf16(v);
  Precision p;
  if constexpr (kBf16 || kQ8) p.dtype = ComputeDType::kBF16;  // q8 rows as the q8/q4 bench rows run: bf16

  ThreadPool pool(o.threads);
  auto slice = [&](const uint8_t* block) {
    CacheSlice s;
    s.stride = o.head_dim;
    if constexpr (kBf16) {
      s.bf16 = reinterpret_cast<const uint16_t*>(block);
    } else if constexpr (kQ8) {
      s.q8 = reinterpret_cast<const int8_t*>(block);
      s.scales = reinterpret_cast<const float*>(block + values_bytes);
    } else {
      s.f32 = reinterpret_cast<const float*>(block);
    }
    return s;
  };
  auto attend = [&](int c) {
    const uint8_t* layer = cache.data() + static_cast<int64_t>(c) * layer_bytes;
    pool.parallel_for(o.kv_heads, [&](int64_t h) {
      const CacheSlice keys = slice(layer + h * head_bytes), values = slice(layer + (o.kv_heads + h) * head_bytes);
      const int64_t offset = h * o.group * o.head_dim;
      attend_kv_head(keys, values, &q[offset], o.group, o.head_dim, o.head_dim, o.depth, &out[offset], o.head_dim, p);
    });
  };
  std::vector<uint64_t> sums(static_cast<size_t>(o.kv_heads));
  auto read = [&](int c) {
    const uint8_t* layer = cache.data() + static_cast<int64_t>(c) * layer_bytes;
    const size_t bytes = static_cast<size_t>(head_bytes);
    pool.parallel_for(o.kv_heads, [&](int64_t h) {  // each task a kv head's keys and values, as above
      sums[static_cast<size_t>(h)] +=
          read_memory(layer + h * head_bytes, bytes) + read_memory(layer + (o.kv_heads + h) * head_bytes, bytes);
    });
  };
  // The read starts half the copies away, so that neither finds the other's copy in the
  // last-level cache.
  const std::vector<double> seconds = time_in_turns({attend, read}, {0, copies / 2}, copies, o.calls);
  for (uint64_t v : sums) g_read_sink = g_read_sink + v;

  AttentionProbeRow row;
  row.cache = name;
  row.layer_bytes = layer_bytes;
  row.copies = copies;
  row.us_per_layer = seconds[0] / o.calls * 1e6;
  const double gb = static_cast<double>(layer_bytes) * o.calls / 1e9;
  row.kernel_gb_s = gb / seconds[0];
  row.read_gb_s = gb / seconds[1];
  return row;
}

}  // namespace

Result<std::vector<AttentionProbeRow>> probe_decode_attention(const std::vector<std::string>& caches,
                                                              const AttentionProbeOptions& o) {
  if (o.kv_heads < 1 || o.kv_heads > 256 || o.group < 1 || o.group > 64 || o.head_dim < 1 || o.head_dim > 1024)
    return Status::Error("--attention-shape: expected 1-256 kv heads, 1-64 query heads each and a head_dim of 1-1024, got " +
                         std::to_string(o.kv_heads) + "x" + std::to_string(o.group) + "x" + std::to_string(o.head_dim));
  if (o.depth < 1 || o.depth > (int64_t{1} << 20))
    return Status::Error("-d: bench --attention needs a depth of 1 to 2^20 cached positions, got " + std::to_string(o.depth));
  if (o.threads < 1 || o.threads > 1024)
    return Status::Error("-t: expected 1 to 1024 threads, got " + std::to_string(o.threads));
  if (o.calls < 1) return Status::Error("bench --attention: expected at least one call per variant");
  std::vector<AttentionProbeRow> rows;
  for (const std::string& c : caches) {
    if (c == "bf16") rows.push_back(probe_cache<uint16_t>(c, o));
    else if (c == "f32") rows.push_back(probe_cache<float>(c, o));
    else if (c == "q8") rows.push_back(probe_cache<int8_t>(c, o));
    else return Status::Error("--cache: expected bf16, f32 or q8, got '" + c + "'");
  }
  return rows;
}

}  // namespace moepp
