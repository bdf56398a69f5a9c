// `moepp bench --stream` pieces: rows per format and page size, the stored size of each format,
// and clear errors for bad requests. Speeds are not asserted (benchmarks are never tests).
#include <gtest/gtest.h>

#include <cmath>

#include "bench/stream_probe.h"
#include "ops/dot_kernels.h"

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
    EXPECT_EQ(r.streams, kernels::one_token_streams()) << r.weights;  // none named: the count in use
  }
}

TEST(StreamProbe, EachStreamCountNamedGetsItsRowsAndTheCountInUseIsKept) {
  const int kept = kernels::one_token_streams();
  StreamProbeOptions o = tiny_probe();
  o.rows = 91;  // 11 whole 8-row blocks: uneven parts for 2 and 4 streams
  o.streams = {2, 4, 1};
  auto rows = probe_one_token_stream({"q4", "bf16"}, o);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 12u);
  for (size_t i = 0; i < rows->size(); ++i) {
    const StreamProbeRow& r = (*rows)[i];
    EXPECT_EQ(r.weights, i < 6 ? "q4" : "bf16");
    EXPECT_EQ(r.pages, i % 6 < 3 ? "huge" : "small");
    EXPECT_EQ(r.streams, o.streams[i % 3]);
    EXPECT_EQ(r.read_gb_s, (*rows)[i - i % 3].read_gb_s);  // one read per page size, shared
  }
  EXPECT_EQ(kernels::one_token_streams(), kept);
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
  for (const std::vector<int>& counts : {std::vector<int>{3}, std::vector<int>{1, 8}, std::vector<int>{2, 2}}) {
    StreamProbeOptions o = tiny_probe();
    o.streams = counts;
    auto bad = probe_one_token_stream({"q8"}, o);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("--streams: "), std::string::npos) << bad.status().message();
  }
}

}  // namespace
}  // namespace moepp
