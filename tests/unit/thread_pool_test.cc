// The thread pool runs every task exactly once, for any task and thread count, repeatedly.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "platform/thread_pool.h"

namespace moepp {
namespace {

TEST(ThreadPool, EveryTaskRunsOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 3, 100, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (int rep = 0; rep < 20; ++rep) pool.parallel_for(n, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 20) << "threads " << threads << " n " << n;
    }
  }
}

// Jobs are handed over through atomics while the threads poll, and through a condition variable
// once they sleep: pauses long enough for the workers to fall asleep, and tasks long enough for the
// caller to, must lose no job and no wake-up (a lost one hangs the test).
TEST(ThreadPool, JobsReachSleepingWorkersAndASleepingCaller) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::vector<int> out(17);
    for (int rep = 0; rep < 600; ++rep) {
      const int n = 1 + rep % 17;
      pool.parallel_for(n, [&](int64_t i) { out[i] = rep + static_cast<int>(i); });
      for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], rep + i) << "threads " << threads << " rep " << rep;
      if (rep % 97 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers fall asleep
      if (rep % 89 == 0)  // the caller finishes first and falls asleep waiting
        pool.parallel_for(threads, [&](int64_t i) {
          if (i != 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        });
    }
  }
}

TEST(ThreadPool, DefaultThreadsIsPositive) { EXPECT_GE(ThreadPool::default_threads(), 1); }

}  // namespace
}  // namespace moepp
