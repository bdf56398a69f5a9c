// KV cache slots grow by doubling; truncation keeps memory for reuse.
#include "layers/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "ops/kv_quant.h"
#include "tensor/weight.h"

namespace moepp {

const char* kv_storage_name(KvStorage s) {
  switch (s) {
    case KvStorage::kF32: return "f32";
    case KvStorage::kBF16: return "bf16";
    case KvStorage::kQ8: return "q8";
  }
  return "?";
}

KvCache::KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KvStorage storage)
    : n_layers_(n_layers),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      storage_(storage),
      scale_groups_(kv_scale_groups(head_dim)) {}

size_t KvCache::head_block_bytes(int64_t capacity) const {
  if (storage_ != KvStorage::kQ8) return static_cast<size_t>(capacity * head_dim_) * element_bytes();
  return static_cast<size_t>(scales_offset(capacity) + capacity * scale_groups_ * static_cast<int64_t>(sizeof(float)));
}

double KvCache::row_bytes() const {
  return static_cast<double>(head_dim_) * static_cast<double>(element_bytes()) +
         (storage_ == KvStorage::kQ8 ? static_cast<double>(scale_groups_ * sizeof(float)) : 0.0);
}

int32_t KvCache::add_sequence() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].in_use) {
      slots_[i] = Slot();
      slots_[i].in_use = true;
      return static_cast<int32_t>(i);
    }
  }
  Slot s;
  s.in_use = true;
  slots_.push_back(std::move(s));
  return static_cast<int32_t>(slots_.size() - 1);
}

void KvCache::remove_sequence(int32_t seq) {
  if (valid(seq)) slots_[seq] = Slot();
}

bool KvCache::valid(int32_t seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < slots_.size() && slots_[seq].in_use;
}

int64_t KvCache::length(int32_t seq) const { return slots_[seq].length; }

void KvCache::truncate(int32_t seq, int64_t n) {
  Slot& s = slot(seq);
  s.length = std::min(s.length, std::max<int64_t>(0, n));
}

void KvCache::reserve(int32_t seq, int64_t n) {
  Slot& s = slot(seq);
  if (n > s.capacity) {
    const int64_t cap = std::max<int64_t>(n, std::max<int64_t>(16, 2 * s.capacity));
    // Bytes of one head's keys or values in a layer, now and after.
    const size_t block = head_block_bytes(cap), old_block = head_block_bytes(s.capacity);
    const int64_t blocks = 2 * n_layers_ * n_kv_heads_;
    std::shared_ptr<void> bigger = allocate_aligned(static_cast<size_t>(blocks) * block);
    if (bigger == nullptr) throw std::bad_alloc();
    char* to = static_cast<char*>(bigger.get());
    const char* from = static_cast<const char*>(s.memory.get());
    // Each head keeps its positions (values, and q8's scales after them); the rest starts at zero.
    const size_t values = static_cast<size_t>(s.capacity * head_dim_) * element_bytes();
    const size_t scales = static_cast<size_t>(s.capacity * scale_groups_) * sizeof(float);
    for (int64_t b = 0; b < blocks; ++b) {
      std::memset(to + b * block, 0, block);
      if (old_block == 0) continue;
      std::memcpy(to + b * block, from + b * old_block, values);
      if (storage_ == KvStorage::kQ8)
        std::memcpy(to + b * block + scales_offset(cap), from + b * old_block + scales_offset(s.capacity), scales);
    }
    s.memory = std::move(bigger);
    s.capacity = cap;
  }
  s.length = std::max(s.length, n);
}

size_t KvCache::bytes() const {
  size_t b = 0;
  for (const Slot& s : slots_) b += 2 * static_cast<size_t>(n_kv_heads_ * n_layers_) * head_block_bytes(s.capacity);
  return b;
}

}  // namespace moepp
