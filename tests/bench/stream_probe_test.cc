// `moepp bench --stream` pieces: rows per format and page size, the stored size of each format,
// and clear errors for bad requests. Speeds are not asserted (benchmarks are never tests).
#include <gtest/gtest.h>

#include <cmath>

#include "bench/stream_probe.h"

namespace moepp {
namespace {

StreamProbeOptions tiny_probe() {
  StreamProbeOptions o;
  o.rows = 20;  // not a multiple of 8: the last block is padded
  o.cols = 100;  // not a multiple of 32: the last group is short
  o.copies_bytes = 64 << 10;
  o.calls = 3;
  return o;
}

TEST(StreamProbe, RowsForEveryFormatOnHugeThenSmallPages) {
  auto rows = probe_one_token_stream({"bf16", "q8", "q4", "f32"}, tiny_probe());
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 8u);
  const char* formats[] = {"bf16", "q8", "q4", "f32"};
  // Stored interleaved sizes: 24 padded rows; bf16 112 padded columns, f32 104; q8/q4 4 groups
  // of 32 (16) bytes per row, values rounded up to 64 bytes, then 4 scales of 4 bytes per row.
  const int64_t bytes[] = {24 * 112 * 2, 24 * 4 * 32 + 24 * 4 * 4, 24 * 4 * 16 + 24 * 4 * 4, 24 * 104 * 4};
  for (size_t i = 0; i < rows->size(); ++i) {
    const StreamProbeRow& r = (*rows)[i];
    EXPECT_EQ(r.weights, formats[i / 2]);
    EXPECT_EQ(r.pages, i % 2 == 0 ? "huge" : "small");
    EXPECT_EQ(r.matrix_bytes, bytes[i / 2]) << r.weights;
    EXPECT_GE(r.copies, 2);
    EXPECT_TRUE(std::isfinite(r.kernel_gb_s) && r.kernel_gb_s > 0) << r.weights;
    EXPECT_TRUE(std::isfinite(r.read_gb_s) && r.read_gb_s > 0) << r.weights;
  }
}

TEST(StreamProbe, BadRequestsGetClearErrors) {
  auto unknown = probe_one_token_stream({"q5"}, tiny_probe());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("expected f32, bf16, q8 or q4, got 'q5'"), std::string::npos);
  StreamProbeOptions narrow = tiny_probe();
  narrow.cols = 8;
  auto shape = probe_one_token_stream({"q8"}, narrow);
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("--stream-shape"), std::string::npos);
}

}  // namespace
}  // namespace moepp
