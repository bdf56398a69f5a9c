// Open-addressing hash maps for the BPE hot path: token text -> id (string_view lookups without
// building a std::string) and (left id, right id) -> merge.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace moepp {

// Ids index dense tables, so a corrupt file must not ask for a huge one; real vocabularies stay
// under 2^18.
constexpr int64_t kMaxTokenId = int64_t{1} << 24;

class StringIdMap {
 public:
  // Inserts or overwrites.
  void set(std::string_view key, int32_t id) {
    if ((keys_.size() + 1) * 2 > slots_.size()) grow();
    const size_t slot = find_slot(key);
    if (slots_[slot] >= 0) {
      ids_[static_cast<size_t>(slots_[slot])] = id;
      return;
    }
    slots_[slot] = static_cast<int32_t>(keys_.size());
    keys_.emplace_back(key);
    ids_.push_back(id);
  }
  // -1 if absent.
  int32_t get(std::string_view key) const {
    if (slots_.empty()) return -1;
    const int32_t s = slots_[find_slot(key)];
    return s < 0 ? -1 : ids_[static_cast<size_t>(s)];
  }
  size_t size() const { return keys_.size(); }
  template <typename F>
  void for_each(F f) const {
    for (size_t i = 0; i < keys_.size(); ++i) f(keys_[i], ids_[i]);
  }

 private:
  size_t find_slot(std::string_view key) const {
    const size_t mask = slots_.size() - 1;
    size_t i = std::hash<std::string_view>()(key) & mask;
    while (slots_[i] >= 0 && keys_[static_cast<size_t>(slots_[i])] != key) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    const size_t n = slots_.empty() ? 64 : slots_.size() * 2;
    slots_.assign(n, -1);
    for (size_t k = 0; k < keys_.size(); ++k) slots_[find_slot(keys_[k])] = static_cast<int32_t>(k);
  }
  std::vector<int32_t> slots_;  // index into keys_/ids_, -1 empty
  std::vector<std::string> keys_;
  std::vector<int32_t> ids_;
};

struct BpeMerge {
  int32_t rank = -1;  // -1: no merge
  int32_t new_id = -1;
};

class PairMergeMap {
 public:
  void set(int32_t a, int32_t b, BpeMerge m) {
    if ((count_ + 1) * 2 > keys_.size()) grow();
    const uint64_t key = pack(a, b);
    size_t i = slot_of(key);
    if (keys_[i] != kEmpty) {
      values_[i] = m;
      return;
    }
    keys_[i] = key;
    values_[i] = m;
    ++count_;
  }
  BpeMerge get(int32_t a, int32_t b) const {
    if (keys_.empty()) return {};
    const size_t i = slot_of(pack(a, b));
    return keys_[i] == kEmpty ? BpeMerge{} : values_[i];
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot_of(uint64_t key) const {
    const size_t mask = keys_.size() - 1;
    size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<uint64_t> old_keys = std::move(keys_);
    std::vector<BpeMerge> old_values = std::move(values_);
    const size_t n = old_keys.empty() ? 1024 : old_keys.size() * 2;
    keys_.assign(n, kEmpty);
    values_.assign(n, BpeMerge{});
    for (size_t k = 0; k < old_keys.size(); ++k) {
      if (old_keys[k] == kEmpty) continue;
      const size_t i = slot_of(old_keys[k]);
      keys_[i] = old_keys[k];
      values_[i] = old_values[k];
    }
  }
  std::vector<uint64_t> keys_;
  std::vector<BpeMerge> values_;
  size_t count_ = 0;
};

}  // namespace moepp
