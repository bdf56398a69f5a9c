#include "bench/weights_read.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "bench/machine.h"

namespace moepp {
namespace {

// Bytes stored at w.data: quantised row-major weights keep their scales in a separate array
// (counted by nbytes), interleaved ones inline.
int64_t data_bytes(const Weight& w) {
  int64_t n = static_cast<int64_t>(w.nbytes());
  if (w.quant != WeightQuant::kNone && !w.interleaved) n -= w.rows * w.groups_per_row() * static_cast<int64_t>(sizeof(float));
  return w.data == nullptr ? 0 : n;
}

std::atomic<uint64_t> g_sink{0};

}  // namespace

WeightsRead::WeightsRead(const Model& model) { add(model); }

void WeightsRead::add(const Model& model) {
  auto add_weight = [&](const Weight& w) {
    const int64_t n = data_bytes(w);
    if (n <= 0) return;
    spans_.push_back({static_cast<const uint8_t*>(w.data), n});
    bytes_ += n;
  };
  for (const LayerWeights& lw : model.weights().layers) {
    for (const Weight* w : {&lw.attention.q, &lw.attention.k, &lw.attention.v, &lw.attention.o, &lw.moe.router.w1})
      add_weight(*w);
    for (const ExpertWeights& e : lw.moe.experts) {
      add_weight(e.gate_up);
      add_weight(e.down);
    }
  }
}

double WeightsRead::read_gb_s(ThreadPool& pool) const {
  if (spans_.empty()) return 0;
  const int64_t shares = pool.size();
  std::vector<uint64_t> sums(static_cast<size_t>(shares), 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (const Span& s : spans_) {
    // Share t of the span, in whole 128-byte steps (read_memory skips a shorter tail).
    const int64_t step = ((s.bytes / shares) / 128) * 128;
    pool.parallel_for(shares, [&](int64_t t) {
      const int64_t begin = t * step, end = t + 1 == shares ? s.bytes : begin + step;
      sums[static_cast<size_t>(t)] += read_memory(s.data + begin, static_cast<size_t>(end - begin));
    });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (uint64_t v : sums) g_sink.fetch_add(v, std::memory_order_relaxed);
  return seconds > 0 ? static_cast<double>(bytes_) / seconds / 1e9 : 0;
}

}  // namespace moepp
