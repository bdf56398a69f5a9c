// `moepp bench --stream` pieces: rows per format and page size, the stored size of each format,
// and clear errors for bad requests. Speeds are not asserted (benchmarks are never tests).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

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

// The streams the active set walks `format`'s one-token product as, 0 for one fixed order
// (restated here: the AVX-512 sets' q8, q4 and, with AVX512_BF16, bf16 kernels, each its count).
int in_use(const std::string& format) {
  using kernels::StreamKernel;
  if (std::string(kernels::active_kernels().isa).rfind("avx512", 0) != 0) return 0;
  if (format == "q8") return kernels::one_token_streams(StreamKernel::kQ8);
  if (format == "q4") return kernels::one_token_streams(StreamKernel::kQ4);
  const bool bf16 = format == "bf16" && __builtin_cpu_supports("avx512bf16");
  return bf16 ? kernels::one_token_streams(StreamKernel::kBf16) : 0;
}

bool counted(const std::string& format) { return in_use(format) > 0; }

TEST(StreamProbe, RowsForEveryFormatOnHugeThenSmallPages) {
  const int forced = kernels::forced_one_token_streams();  // the probe sets counts, then puts this back
  auto rows = probe_one_token_stream({"bf16", "q8", "q4", "f32"}, tiny_probe());
  EXPECT_EQ(kernels::forced_one_token_streams(), forced);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 8u);
  const char* formats[] = {"bf16", "q8", "q4", "f32"};
  // Stored interleaved sizes: bf16/f32 24 padded rows (blocks of 8), 112 and 104 padded columns;
  // q8/q4 32 padded rows (blocks of 16), 4 groups of 32 (16) bytes per row and 4 scales of 4 bytes.
  const int64_t bytes[] = {24 * 112 * 2, 32 * 4 * 32 + 32 * 4 * 4, 32 * 4 * 16 + 32 * 4 * 4, 24 * 104 * 4};
  for (size_t i = 0; i < rows->size(); ++i) {
    const StreamProbeRow& r = (*rows)[i];
    EXPECT_EQ(r.weights, formats[i / 2]);
    EXPECT_EQ(r.pages, i % 2 == 0 ? "huge" : "small");
    EXPECT_EQ(r.matrix_bytes, bytes[i / 2]) << r.weights;
    EXPECT_GE(r.copies, 2);
    EXPECT_TRUE(std::isfinite(r.kernel_gb_s) && r.kernel_gb_s > 0) << r.weights;
    EXPECT_TRUE(std::isfinite(r.read_gb_s) && r.read_gb_s > 0) << r.weights;
    EXPECT_EQ(r.streams, in_use(r.weights)) << r.weights;  // none named: each format's own
  }
}

TEST(StreamProbe, EachStreamCountNamedGetsItsRowsAndTheCountInUseIsKept) {
  const kernels::KeepOneTokenStreams keep;
  ASSERT_TRUE(kernels::set_one_token_streams(2));  // neither count named below, nor the last run
  StreamProbeOptions o = tiny_probe();
  o.rows = 91;  // 5 whole 16-row q4 blocks: uneven parts for 2 and 4 streams
  o.streams = {4, 1};
  auto rows = probe_one_token_stream({"q4", "f32"}, o);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  // A row per count and page size where the kernel walks streams, else one per page size (0).
  std::vector<std::pair<std::string, int>> want;
  for (const std::string f : {"q4", "f32"})
    for (const char* pages : {"huge", "small"})
      for (int s : counted(f) ? o.streams : std::vector<int>{0}) want.push_back({f + " " + pages, s});
  ASSERT_EQ(rows->size(), want.size());
  for (size_t i = 0; i < rows->size(); ++i) {
    const StreamProbeRow& r = (*rows)[i];
    EXPECT_EQ(r.weights + " " + r.pages, want[i].first) << i;
    EXPECT_EQ(r.streams, want[i].second) << i;
    EXPECT_EQ(r.read_gb_s, (*rows)[i - i % (r.streams > 0 ? 2 : 1)].read_gb_s);  // one read per page size
  }
  EXPECT_EQ(kernels::forced_one_token_streams(), 2);
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
