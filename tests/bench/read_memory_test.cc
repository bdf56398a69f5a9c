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
    for (size_t n : {0, 127, 128, 255, 256, 383, 384, 1000, 4096, 8191, 8192, 12288 + 130, 16384, 65536 + 300}) {
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

}  // namespace
}  // namespace moepp
