// A persistent pool of worker threads with a blocking parallel-for. One pool is created per
// process (or per test) and passed explicitly; no thread is created per operation.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace moepp {

class ThreadPool {
 public:
  // n_threads counts the calling thread: 1 means everything runs inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task) for task in [0, n_tasks); threads pull tasks from an atomic counter. One caller
  // at a time: two threads must not share a pool (the server engine owns its own). Each
  // task must write disjoint outputs, which keeps results independent of the thread count.
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  static int default_threads();  // physical cores (best effort)

  // Waits until another task of the same job sets `flag` (with release), pausing between polls.
  // Safe only for a task claimed before the waiting one: tasks are claimed in index order, so it
  // is already running on another thread and finishes without waiting on this one.
  static void spin_until(const std::atomic<bool>& flag);

 private:
  void worker_loop();
  void run_tasks();

  // A job is handed over through atomics alone while the threads poll (decode runs about a hundred
  // jobs a token, microseconds apart); the mutex and condition variables serve only a thread that
  // has stopped polling and sleeps, and each side takes them only when the other says it sleeps
  // (sleepers_, caller_sleeps_). Both sides' flag and counter are sequentially consistent, so one
  // of the two always sees the other: no wake-up is lost.
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)>* job_ = nullptr;  // published by generation_
  int64_t n_tasks_ = 0;                                // published by generation_
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};             // workers still in the current job
  std::atomic<uint64_t> generation_{0};  // one more per job
  std::atomic<int> sleepers_{0};         // workers waiting on wake_
  std::atomic<bool> caller_sleeps_{false};  // the caller waits on done_
  std::atomic<bool> stop_{false};
};

// Runs fn(begin, end) over [0, n) in ranges of `chunk` items spread over the pool (inline when
// there is one range or one thread). For passes over independent rows: the same bits however split.
template <class Fn>
void parallel_ranges(ThreadPool& pool, int64_t n, int64_t chunk, Fn&& fn) {
  const int64_t ranges = (n + chunk - 1) / chunk;
  if (ranges <= 1 || pool.size() <= 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  pool.parallel_for(ranges, [&](int64_t r) { fn(r * chunk, std::min(n, (r + 1) * chunk)); });
}

// The same where a pool is optional (loading, which tools without a pool share): without one,
// fn(0, n) on the calling thread.
template <class Fn>
void parallel_ranges(ThreadPool* pool, int64_t n, int64_t chunk, Fn&& fn) {
  if (pool != nullptr) return parallel_ranges(*pool, n, chunk, std::forward<Fn>(fn));
  if (n > 0) fn(int64_t{0}, n);
}

}  // namespace moepp
