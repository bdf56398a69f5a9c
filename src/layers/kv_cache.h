// Per-sequence key/value cache: k (after RoPE) and v of every layer, position and kv head.
// Sequences are independent slots, so a scheduler can add, roll back and drop them freely.
// Stored as f32, or as bf16 where every value is a bf16 value (a bf16-precision forward rounds k
// and v to bf16, as the reference's bf16 cache holds them): half the memory and half the bytes
// attention reads, with the same numbers. Or, by choice (`--kv-cache q8`), as int8 rows with a
// scale per 32 values (ops/kv_quant.h): about half of bf16 again, at a cost in accuracy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"

namespace moepp {

enum class KvStorage : uint8_t { kF32, kBF16, kQ8 };
const char* kv_storage_name(KvStorage s);  // "f32", "bf16", "q8"

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KvStorage storage = KvStorage::kF32);
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
  KvStorage storage() const { return storage_; }
  bool bf16() const { return storage_ == KvStorage::kBF16; }
  bool q8() const { return storage_ == KvStorage::kQ8; }
  // Bytes attention reads for one kv head's key (or value) at one position.
  double row_bytes() const;
  // The head_dim values of kv head `head` at position `pos` of layer `layer`, sequence `seq`: floats
  // in an f32 cache, bf16 bit patterns in a bf16 one, int8 values and their kv_scale_groups(head_dim)
  // scales in a q8 one (each accessor for its own storage only). A head's positions follow each
  // other, head_dim() values (and q8's scales, kv_scale_groups(head_dim) scales) apart.
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
  int8_t* k_q8(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<int8_t*>(at(seq, 2 * layer, head, pos));
  }
  int8_t* v_q8(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return static_cast<int8_t*>(at(seq, 2 * layer + 1, head, pos));
  }
  float* k_scales(int64_t layer, int32_t seq, int64_t head, int64_t pos) { return scales_at(seq, 2 * layer, head, pos); }
  float* v_scales(int64_t layer, int32_t seq, int64_t head, int64_t pos) {
    return scales_at(seq, 2 * layer + 1, head, pos);
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
  size_t element_bytes() const {
    return storage_ == KvStorage::kF32 ? sizeof(float) : storage_ == KvStorage::kBF16 ? sizeof(uint16_t) : 1;
  }
  // Bytes of one part's head at `capacity` positions: values, then (q8) their scales.
  size_t head_block_bytes(int64_t capacity) const;
  // Position `pos` of kv head `head` in part p (2 * layer: keys, 2 * layer + 1: values) of a sequence.
  void* at(int32_t seq, int64_t part, int64_t head, int64_t pos) {
    Slot& s = slot(seq);
    const int64_t block = static_cast<int64_t>(head_block_bytes(s.capacity));
    return static_cast<char*>(s.memory.get()) + (part * n_kv_heads_ + head) * block +
           pos * head_dim_ * static_cast<int64_t>(element_bytes());
  }
  float* scales_at(int32_t seq, int64_t part, int64_t head, int64_t pos) {
    Slot& s = slot(seq);
    const int64_t block = static_cast<int64_t>(head_block_bytes(s.capacity));
    char* values = static_cast<char*>(s.memory.get()) + (part * n_kv_heads_ + head) * block;
    return reinterpret_cast<float*>(values + scales_offset(s.capacity)) + pos * scale_groups_;
  }
  // Where a q8 head block's scales start: after its values, rounded up to 64 bytes.
  int64_t scales_offset(int64_t capacity) const { return (capacity * head_dim_ + 63) / 64 * 64; }

  int64_t n_layers_, n_kv_heads_, head_dim_;
  KvStorage storage_;
  int64_t scale_groups_;  // q8: scales a row
  std::vector<Slot> slots_;
};

}  // namespace moepp
