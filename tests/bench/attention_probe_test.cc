// `moepp bench --attention` pieces: a row per cache type with the layer's byte count, and clear
// errors for bad requests. Speeds are not asserted (benchmarks are never tests).
#include <gtest/gtest.h>

#include <cmath>

#include "bench/attention_probe.h"

namespace moepp {
namespace {

AttentionProbeOptions tiny_probe() {
  AttentionProbeOptions o;
  o.kv_heads = 3;
  o.group = 2;
  o.head_dim = 72;  // a 64-wide chunk and a masked tail of 8
  o.depth = 45;     // whole blocks of 8 keys past the prefetch distance, and 5 more
  o.copies_bytes = 64 << 10;
  o.calls = 3;
  o.threads = 2;
  return o;
}

TEST(AttentionProbe, RowPerCacheTypeWithTheLayersBytes) {
  auto rows = probe_decode_attention({"bf16", "f32", "q8"}, tiny_probe());
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 3u);
  const char* caches[] = {"bf16", "f32", "q8"};
  // [k, v][kv head] blocks of 45 rows of head_dim 72: 2 or 4 bytes a value, or q8's 72 bytes (the
  // block's values padded to 64 bytes) and 3 scales a row.
  const int64_t head_bytes[] = {45 * 72 * 2, 45 * 72 * 4, (45 * 72 + 63) / 64 * 64 + 45 * 3 * 4};
  for (size_t i = 0; i < rows->size(); ++i) {
    const AttentionProbeRow& r = (*rows)[i];
    EXPECT_EQ(r.cache, caches[i]);
    EXPECT_EQ(r.layer_bytes, 2 * 3 * head_bytes[i]) << r.cache;
    EXPECT_GE(r.copies, 2);
    EXPECT_TRUE(std::isfinite(r.us_per_layer) && r.us_per_layer > 0) << r.cache;
    EXPECT_TRUE(std::isfinite(r.kernel_gb_s) && r.kernel_gb_s > 0) << r.cache;
    EXPECT_TRUE(std::isfinite(r.read_gb_s) && r.read_gb_s > 0) << r.cache;
  }
}

TEST(AttentionProbe, BadRequestsGetClearErrors) {
  auto unknown = probe_decode_attention({"f16"}, tiny_probe());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("--cache: expected bf16, f32 or q8, got 'f16'"), std::string::npos);
  AttentionProbeOptions no_heads = tiny_probe();
  no_heads.kv_heads = 0;
  auto shape = probe_decode_attention({"bf16"}, no_heads);
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("--attention-shape"), std::string::npos);
  AttentionProbeOptions empty = tiny_probe();
  empty.depth = 0;
  auto depth = probe_decode_attention({"bf16"}, empty);
  ASSERT_FALSE(depth.ok());
  EXPECT_NE(depth.status().message().find("-d:"), std::string::npos);
}

}  // namespace
}  // namespace moepp
