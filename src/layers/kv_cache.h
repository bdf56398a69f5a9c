// Per-sequence key/value cache: k (after RoPE) and v of every layer, position and kv head.
// Sequences are independent slots, so a scheduler can add, roll back and drop them freely.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"

namespace moepp {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim);
  // Moved, never copied: a copy would share the sequences' memory.
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int32_t add_sequence();                 // returns a slot id
  void remove_sequence(int32_t seq);      // frees its memory; the id may be reused
  int64_t length(int32_t seq) const;      // positions stored
  void truncate(int32_t seq, int64_t n);  // keep positions [0, n): rollback after rejection
  bool valid(int32_t seq) const;

  // Makes room for positions [0, n) and sets the length to max(length, n).
  void reserve(int32_t seq, int64_t n);

  int64_t row_size() const { return n_kv_heads_ * head_dim_; }
  // [row_size] rows of layer `layer`, sequence `seq`, position `pos`.
  float* k(int64_t layer, int32_t seq, int64_t pos) { return rows(seq, 2 * layer) + pos * row_size(); }
  float* v(int64_t layer, int32_t seq, int64_t pos) { return rows(seq, 2 * layer + 1) + pos * row_size(); }
  size_t bytes() const;

 private:
  // One block per sequence, [n_layers][k, v][capacity][row_size]: attention reads a head's slice
  // of every row, one row apart, so the block is large enough to sit on transparent huge pages
  // (tensor/weight.h allocate_aligned), where per-layer buffers of a few MiB would cost a TLB
  // miss per key.
  struct Slot {
    bool in_use = false;
    int64_t length = 0;
    int64_t capacity = 0;
    std::shared_ptr<void> memory;
  };
  Slot& slot(int32_t seq) { return slots_[static_cast<size_t>(seq)]; }
  // Rows of part p (2 * layer: keys, 2 * layer + 1: values) of a sequence.
  float* rows(int32_t seq, int64_t part) {
    Slot& s = slot(seq);
    return static_cast<float*>(s.memory.get()) + part * s.capacity * row_size();
  }

  int64_t n_layers_, n_kv_heads_, head_dim_;
  std::vector<Slot> slots_;
};

}  // namespace moepp
