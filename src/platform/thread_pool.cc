// Persistent thread pool: workers sleep on a condition variable between jobs.
#include "platform/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

namespace moepp {

namespace {

// Pins worker `i` (1-based; the caller is 0) to the i-th CPU the process may run on, when there
// are at least as many CPUs as threads: a worker that stays on one core keeps its caches and
// does not trade places with its neighbours between tasks. The calling thread is left free, so
// threads it creates later (server, tokenizer) do not inherit a one-core mask.
void pin_worker(std::thread& t, int i, int n_threads) {
  if (std::getenv("MOEPP_NO_PIN") != nullptr) return;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < n_threads) return;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ < i) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(t.native_handle(), sizeof(one), &one);  // best effort: pinning is an optimisation
    return;
  }
}

constexpr int kSpinIterations = 4000;  // of a pause instruction: some tens of microseconds

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) {
    workers_.emplace_back([this] { worker_loop(); });
    pin_worker(workers_.back(), i, n_threads_);
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks() {
  for (;;) {
    const int64_t task = next_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) break;
    (*job_)(task);
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // Decode runs a few parallel_for calls per layer, microseconds apart: a worker that polls
    // for a while before sleeping joins the next one at once instead of after a futex wake-up.
    for (int i = 0; i < kSpinIterations && generation_.load(std::memory_order_acquire) == seen && !stop_.load(); ++i)
      cpu_relax();
    if (generation_.load(std::memory_order_acquire) == seen && !stop_.load()) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_tasks();
    if (busy_.fetch_sub(1) == 1 && caller_sleeps_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i);
    return;
  }
  // The previous job has ended (busy_ reached 0), so no worker reads these until the new
  // generation publishes them.
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_.store(0, std::memory_order_relaxed);
  busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);  // every worker joins, then reports
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  run_tasks();
  // Workers that joined late find no task left and report at once; poll before sleeping.
  for (int i = 0; i < kSpinIterations && busy_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  if (busy_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    caller_sleeps_.store(true);
    done_.wait(lock, [&] { return busy_.load() == 0; });
    caller_sleeps_.store(false);
  }
  job_ = nullptr;
}

void ThreadPool::spin_until(const std::atomic<bool>& flag) {
  // Yields after a while, so a waiter on a machine with more threads than cores lets the thread
  // it waits for run.
  for (int i = 0; !flag.load(std::memory_order_acquire); ++i) {
    if (i < kSpinIterations) cpu_relax();
    else std::this_thread::yield();
  }
}

int ThreadPool::default_threads() {
  // Physical cores: distinct (physical id, core id) pairs in /proc/cpuinfo.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(in, line)) {
    if (line.rfind("physical id", 0) == 0) phys = std::stoi(line.substr(line.find(':') + 1));
    if (line.rfind("core id", 0) == 0) cores.insert({phys, std::stoi(line.substr(line.find(':') + 1))});
  }
  const int logical = static_cast<int>(std::thread::hardware_concurrency());
  if (cores.empty()) return logical > 0 ? logical : 1;
  return static_cast<int>(cores.size());
}

}  // namespace moepp
