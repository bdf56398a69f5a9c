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

  int64_t head_dim() const { return head_dim_; }
  bool bf16() const { return bf16_; }
  // The head_dim values of kv head `head` at position `pos` of layer `layer`, sequence `seq`: floats
  // in an f32 cache, bf16 bit patterns in a bf16 one (each pair of accessors for its own storage
  // only). A head's positions follow each other, head_dim() values apart.
  float* k(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<float*>(at(seq, 2 * layer, head, pos));
  }
  float* v(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<float*>(at(seq, 2 * layer + 1, head, pos));
  }
  uint16_t* k_bf16(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<uint16_t*>(at(seq, 2 * layer, head, pos));
  }
  uint16_t* v_bf16(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<uint16_t*>(at(seq, 2 * layer + 1, head, pos));
  }
  size_t bytes() const;

 private:
  // One block per sequence, [n_layers][k, v][n_kv_heads][capacity][head_dim]: attention reads
  // one head's keys and values for every position, so each is one contiguous stream. Rows of all
  // heads per position read a head's 128 bytes out of every 512 (4 kv heads of 64 bf16) and
  // attention after 2048 tokens ran at 364 against 209 us a layer (a micro-benchmark of the
  // kernels on cold copies of the two layouts). The block is large enough to sit on transparent
  // huge pages (tensor/weight.h allocate_aligned), where per-layer buffers of a few MiB would
  // cost a TLB miss per key.
  struct Slot {
    bool in_use = false;
    int64_t length = 0;
    int64_t capacity = 0;
    std::shared_ptr<void> memory;
  };
  Slot& slot(int32_t seq) { return slots_[static_cast<size_t>(seq)]; }
  size_t element_bytes() const { return bf16_ ? sizeof(uint16_t) : sizeof(float); }
  // Position `pos` of kv head `head` in part p (2 * layer: keys, 2 * layer + 1: values) of a sequence.
  void* at(int32_t seq, int64_t part, int64_t head, int64_t pos) {
    Slot& s = slot(seq);
    const int64_t element = ((part * n_kv_heads_ + head) * s.capacity + pos) * head_dim_;
    return static_cast<char*>(s.memory.get()) + element * static_cast<int64_t>(element_bytes());
  }

  int64_t n_layers_, n_kv_heads_, head_dim_;
  bool bf16_;
  std::vector<Slot> slots_;
};

}  // namespace moepp
