// The tokenizer.json BPE model (tokenizers/src/models/bpe): vocab, ranked merges, byte
// fallback, unk fusing, ignore_merges, subword prefix/suffix, and a cache of words seen.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/hf_hash_map.h"
#include "tokenizer/hf_json.h"

namespace moepp {

// Bounded, thread-safe word -> ids cache (HF keeps one too; words repeat a lot in text).
class BpeWordCache {
 public:
  bool get(std::string_view word, std::vector<int32_t>& out) const;
  void put(std::string_view word, const std::vector<int32_t>& ids) const;
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kMaxEntries = 1 << 16;

 private:
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> map_;
};

class HfBpeModel {
 public:
  // `obj.json()` is the "model" object.
  static Result<std::unique_ptr<HfBpeModel>> parse(const HfJsonObject& obj);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  int32_t token_to_id(std::string_view token) const { return vocab_.get(token); }
  // nullptr if the id is not in the vocabulary.
  const std::string* id_to_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size() || !has_piece_[static_cast<size_t>(id)]) return nullptr;
    return &pieces_[static_cast<size_t>(id)];
  }
  int64_t id_limit() const { return static_cast<int64_t>(pieces_.size()); }  // max id + 1

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void tokenize_cached(std::string_view word, std::vector<int32_t>& out) const;

  StringIdMap vocab_;
  std::vector<std::string> pieces_;  // id -> token
  std::vector<bool> has_piece_;
  PairMergeMap merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  // True when no vocabulary token has "▁" after a character other than "▁" (SentencePiece-style
  // vocabularies): no merge can then cross the start of a "▁" run, so a long word (the whole text
  // when there is no pre-tokenizer) may be split there first with identical results.
  bool split_at_metaspace_ = false;
  int32_t byte_ids_[256];        // <0xHH> ids for byte_fallback, -1 if absent
  BpeWordCache cache_;
};

}  // namespace moepp
