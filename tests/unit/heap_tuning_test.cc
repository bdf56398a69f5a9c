// The heap keeps freed activation buffers for reuse, and gives them back when asked (moepp bench
// between models), so that one model's peak memory does not count another's freed buffers.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "platform/heap_tuning.h"

namespace moepp {
namespace {

int64_t resident_bytes() {  // VmRSS from /proc/self/status; -1 if absent
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

TEST(HeapTuning, FreedBuffersStayUntilReturnedToTheSystem) {
#if defined(__SANITIZE_ADDRESS__) || !defined(__GLIBC__)
  GTEST_SKIP() << "glibc's heap only (AddressSanitizer has its own allocator)";
#endif
  if (resident_bytes() < 0) GTEST_SKIP() << "no /proc/self/status";
  keep_freed_buffers_for_reuse();
  constexpr int kBlocks = 96;  // of 1 MiB: below the mmap threshold, so from the heap
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    blocks.emplace_back(new char[1 << 20]);
    std::memset(blocks.back().get(), 1, 1 << 20);  // resident
  }
  const int64_t in_use = resident_bytes();
  blocks.clear();
  const int64_t kept = resident_bytes();
  return_free_heap_to_system();
  const int64_t returned = resident_bytes();
  EXPECT_GT(kept, in_use - (16 << 20)) << "freed buffers were given back before they were asked for";
  EXPECT_GT(kept - returned, 64 << 20) << "kept " << kept << " bytes, " << returned << " after the trim";
}

}  // namespace
}  // namespace moepp
