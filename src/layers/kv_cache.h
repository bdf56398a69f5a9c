// Per-sequence key/value cache: k (after RoPE) and v of every layer, position and kv head.
// Sequences are independent slots, so a scheduler can add, roll back and drop them freely.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace moepp {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim);

  int32_t add_sequence();                 // returns a slot id
  void remove_sequence(int32_t seq);      // frees its memory; the id may be reused
  int64_t length(int32_t seq) const;      // positions stored
  void truncate(int32_t seq, int64_t n);  // keep positions [0, n): rollback after rejection
  bool valid(int32_t seq) const;

  // Makes room for positions [0, n) and sets the length to max(length, n).
  void reserve(int32_t seq, int64_t n);

  int64_t row_size() const { return n_kv_heads_ * head_dim_; }
  // [row_size] rows of layer `layer`, sequence `seq`, position `pos`.
  float* k(int64_t layer, int32_t seq, int64_t pos) { return slot(seq).k[layer].data() + pos * row_size(); }
  float* v(int64_t layer, int32_t seq, int64_t pos) { return slot(seq).v[layer].data() + pos * row_size(); }
  size_t bytes() const;

 private:
  struct Slot {
    bool in_use = false;
    int64_t length = 0;
    int64_t capacity = 0;
    std::vector<std::vector<float>> k, v;  // [n_layers][capacity * row_size]
  };
  Slot& slot(int32_t seq) { return slots_[static_cast<size_t>(seq)]; }

  int64_t n_layers_, n_kv_heads_, head_dim_;
  std::vector<Slot> slots_;
};

}  // namespace moepp
