// Added tokens of tokenizer.json (tokenizers/src/tokenizer/added_vocabulary.rs): found before
// anything else with a leftmost-longest match, with lstrip/rstrip/single_word rules.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moepp {

class HfNormalizer;

struct HfAddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// A [start, end) span of the text: an added token (id >= 0) or text for the model (id -1).
struct HfSegment {
  size_t start, end;
  int32_t id;
};

// Leftmost-longest matcher over a set of strings (a byte trie; the Aho-Corasick automaton HF
// uses gives the same matches, and added-token sets are small).
class HfTokenMatcher {
 public:
  void add(const std::string& pattern, int32_t token_index);
  bool empty() const { return n_patterns_ == 0; }
  // Leftmost-longest match at or after `from`: sets [*start, *end) and returns the token index,
  // or -1 if none.
  int32_t find(std::string_view text, size_t from, size_t* start, size_t* end) const;

 private:
  int32_t child(int32_t node, uint8_t b) const;
  std::array<int32_t, 256> root_{};  // root edges, 0 = none (node 0 is the root)
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> terminal_{-1};  // node -> token index, -1 if none
  size_t n_patterns_ = 0;
};

class HfAddedVocab {
 public:
  // Tokens with normalized:true are matched on normalized text, so their content is normalized
  // with the same normalizer (may be null).
  void build(std::vector<HfAddedToken> tokens, const HfNormalizer* normalizer);

  // Splits `text` on the raw (normalized:false) or normalized tokens. With parse_special false,
  // special tokens are not split out (HF's encode_special_tokens). Empty spans are omitted.
  void split(std::string_view text, bool normalized_set, bool parse_special, std::vector<HfSegment>& out) const;

  const HfAddedToken* by_id(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  int32_t id_of(std::string_view content) const {
    auto it = by_content_.find(std::string(content));
    return it == by_content_.end() ? -1 : tokens_[it->second].id;
  }
  const std::vector<HfAddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<HfAddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  HfTokenMatcher raw_, normalized_;
};

}  // namespace moepp
