// Per-sequence key/value cache: k (after RoPE) and v of every layer, position and kv head.
// Sequences are independent slots, so a scheduler can add, roll back and drop them freely.
// Stored as f32, or as bf16 where every value is a bf16 value (a bf16-precision forward rounds k
// and v to bf16, as the reference's bf16 cache holds them): half the memory and half the bytes
// attention reads, with the same numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"

namespace moepp {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, bool bf16 = false);
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
  bool bf16() const { return bf16_; }
  // [row_size] rows of layer `layer`, sequence `seq`, position `pos`: floats in an f32 cache,
  // bf16 bit patterns in a bf16 one (each pair of accessors for its own storage only).
  float* k(int64_t layer, int32_t seq, int64_t pos) { return static_cast<float*>(row(seq, 2 * layer, pos)); }
  float* v(int64_t layer, int32_t seq, int64_t pos) { return static_cast<float*>(row(seq, 2 * layer + 1, pos)); }
  uint16_t* k_bf16(int64_t layer, int32_t seq, int64_t pos) { return static_cast<uint16_t*>(row(seq, 2 * layer, pos)); }
  uint16_t* v_bf16(int64_t layer, int32_t seq, int64_t pos) {
    return static_cast<uint16_t*>(row(seq, 2 * layer + 1, pos));
  }
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
  size_t element_bytes() const { return bf16_ ? sizeof(uint16_t) : sizeof(float); }
  // Row `pos` of part p (2 * layer: keys, 2 * layer + 1: values) of a sequence.
  void* row(int32_t seq, int64_t part, int64_t pos) {
    Slot& s = slot(seq);
    return static_cast<char*>(s.memory.get()) + ((part * s.capacity + pos) * row_size()) * element_bytes();
  }

  int64_t n_layers_, n_kv_heads_, head_dim_;
  bool bf16_;
  std::vector<Slot> slots_;
};

}  // namespace moepp
