// The plain read that every bench share divides by reads every byte up to the last whole 128
// (two streams an odd number of 4 KiB pages apart, then the tail), at any alignment.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "bench/machine.h"

namespace moepp {
namespace {

TEST(ReadMemory, SumsEveryWordUpToTheLastWhole128Bytes) {
  std::mt19937_64 rng(5);
  std::vector<uint8_t> buf(70000);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t offset : {0, 1, 8, 33})
    for (size_t n : {0, 127, 128, 255, 256, 383, 384, 1000, 4096, 8191, 8192, 12288 + 130, 16384, 24576, 65536 + 300}) {
      const uint8_t* p = buf.data() + offset;
      uint64_t want = 0;
      for (size_t i = 0; i + 8 <= n / 128 * 128; i += 8) {
        uint64_t word;
        std::memcpy(&word, p + i, 8);
        want += word;
      }
      EXPECT_EQ(read_memory(p, n), want) << "offset " << offset << " n " << n;
    }
}

// The second stream starts in whole 128-byte steps, both streams fit in n with a tail under 16
// KiB, and from 8 KiB on the distance is an odd number of 4 KiB pages: never a multiple of 8 KiB,
// so never a large power of two (two streams 256 MiB apart read 20-30% slower on a Zen 4).
TEST(ReadMemory, StreamsAnOddNumberOfPagesApart) {
  for (size_t n : {size_t{0}, size_t{200}, size_t{8191}, size_t{8192}, size_t{12418}, size_t{16384}, size_t{24576},
                   size_t{65836}, size_t{1} << 30, (size_t{1} << 30) + 4096, size_t{1000} << 20}) {
    const size_t d = read_stream_distance(n);
    EXPECT_EQ(d % 128, 0u) << n;
    EXPECT_LE(2 * d, n) << n;
    EXPECT_LT(n - 2 * d, n < 8192 ? size_t{256} : size_t{16384}) << n;
    if (n >= 8192) {
      EXPECT_EQ(d % 8192, 4096u) << n;
    }
  }
  EXPECT_EQ(read_stream_distance(size_t{1} << 30), (size_t{1} << 29) - 4096);
}

}  // namespace
}  // namespace moepp
