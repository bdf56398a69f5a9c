// Added-token extraction: the two-pass split (raw text, then normalized text) of HF.
#include "tokenizer/hf_added_vocab.h"

#include <algorithm>

#include "tokenizer/hf_normalizer.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {

int32_t HfTokenMatcher::child(int32_t node, uint8_t b) const {
  if (node == 0) return root_[b];
  auto it = edges_.find((static_cast<uint64_t>(node) << 8) | b);
  return it == edges_.end() ? 0 : it->second;
}

void HfTokenMatcher::add(const std::string& pattern, int32_t token_index) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (char c : pattern) {
    const auto b = static_cast<uint8_t>(c);
    int32_t next = child(node, b);
    if (next == 0) {
      next = static_cast<int32_t>(terminal_.size());
      terminal_.push_back(-1);
      if (node == 0) root_[b] = next;
      else edges_[(static_cast<uint64_t>(node) << 8) | b] = next;
    }
    node = next;
  }
  // A duplicate content keeps the first token, as HF's trie does with repeated patterns.
  if (terminal_[static_cast<size_t>(node)] < 0) terminal_[static_cast<size_t>(node)] = token_index;
  ++n_patterns_;
}

int32_t HfTokenMatcher::find(std::string_view text, size_t from, size_t* start, size_t* end) const {
  if (n_patterns_ == 0) return -1;
  for (size_t i = from; i < text.size(); ++i) {
    int32_t node = root_[static_cast<uint8_t>(text[i])];
    if (node == 0) continue;
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t k = i + 1;; ++k) {
      if (terminal_[static_cast<size_t>(node)] >= 0) {
        best = terminal_[static_cast<size_t>(node)];
        best_end = k;
      }
      if (k >= text.size()) break;
      node = child(node, static_cast<uint8_t>(text[k]));
      if (node == 0) break;
    }
    if (best >= 0) {
      *start = i;
      *end = best_end;
      return best;
    }
  }
  return -1;
}

void HfAddedVocab::build(std::vector<HfAddedToken> tokens, const HfNormalizer* normalizer) {
  tokens_ = std::move(tokens);
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const HfAddedToken& t = tokens_[k];
    by_id_.emplace(t.id, k);
    by_content_.emplace(t.content, k);
    if (t.normalized) {
      std::string content = t.content;
      if (normalizer != nullptr) normalizer->normalize(content);
      normalized_.add(content, static_cast<int32_t>(k));
    } else {
      raw_.add(t.content, static_cast<int32_t>(k));
    }
  }
}

namespace {

bool is_word_char(char32_t c) { return c == '_' || unicode_is_alphanumeric(c); }

// Code point ending at byte `end` (exclusive) of valid UTF-8 `s`.
char32_t last_char(std::string_view s, size_t end, size_t* start) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t len = 0;
  *start = i;
  return utf8_decode_valid(s, i, &len);
}

}  // namespace

void HfAddedVocab::split(std::string_view text, bool normalized_set, bool parse_special,
                         std::vector<HfSegment>& out) const {
  const HfTokenMatcher& matcher = normalized_set ? normalized_ : raw_;
  size_t start_offset = 0;  // end of the previous emitted span
  size_t from = 0;          // where the matcher resumes (HF's find_iter position)
  while (from < text.size()) {
    size_t start = 0, stop = 0;
    const int32_t k = matcher.find(text, from, &start, &stop);
    if (k < 0) break;
    from = stop;
    const HfAddedToken& t = tokens_[static_cast<size_t>(k)];
    if (!parse_special && t.special) continue;
    if (t.single_word) {
      size_t dummy = 0;
      const bool start_space = start == 0 || !is_word_char(last_char(text, start, &dummy));
      size_t len = 0;
      const bool stop_space = stop == text.size() || !is_word_char(utf8_decode_valid(text, stop, &len));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t prev = 0;
        if (!unicode_is_whitespace(last_char(text, s, &prev))) break;
        s = prev;
      }
      start = std::max(s, start_offset);  // spaces an earlier match took are not taken again
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t len = 0;
        if (!unicode_is_whitespace(utf8_decode_valid(text, stop, &len))) break;
        stop += len;
      }
    }
    if (start < start_offset) start = start_offset;  // cannot happen in HF; keeps spans ordered
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace moepp
