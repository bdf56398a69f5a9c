// Pre-tokenizers of tokenizers/src/pre_tokenizers/*.rs, with the split-behaviour rules of
// tokenizers/src/tokenizer/normalizer.rs (NormalizedString::split) reproduced exactly.
#include "tokenizer/hf_pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "tokenizer/hf_pattern.h"
#include "tokenizer/hf_regex.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {
namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t start, end;
  bool is_match;
};

// Turns match offsets into the covering list of (span, is_match) that HF's Pattern::find_matches
// produces.
void cover(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert, std::vector<Span>& spans) {
  spans.clear();
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (prev != s) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != size) spans.push_back({prev, size, invert});
}

void split_with_behavior(HfPiece&& in, const std::vector<Span>& matches, SplitBehavior behavior,
                         std::vector<HfPiece>& out) {
  std::vector<Span> parts;
  parts.reserve(matches.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& m : matches) parts.push_back({m.start, m.end, false});
      break;
    case SplitBehavior::kRemoved:
      parts = matches;
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& m : matches) {
        if (m.is_match == previous_match && !parts.empty()) parts.back().end = m.end;
        else parts.push_back({m.start, m.end, false});
        previous_match = m.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& m : matches) {
        if (m.is_match && !previous_match && !parts.empty()) parts.back().end = m.end;
        else parts.push_back({m.start, m.end, false});
        previous_match = m.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t k = matches.size(); k-- > 0;) {
        const Span& m = matches[k];
        if (m.is_match && !previous_match && !parts.empty()) parts.back().start = m.start;
        else parts.push_back({m.start, m.end, false});
        previous_match = m.is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  if (parts.size() == 1 && parts[0].start == 0 && parts[0].end == in.text.size() && !parts[0].is_match) {
    if (!in.text.empty()) out.push_back(std::move(in));
    return;
  }
  for (const Span& p : parts) {
    if (p.is_match || p.end == p.start) continue;  // removed, or empty
    out.push_back({in.text.substr(p.start, p.end - p.start), in.at_start && p.start == 0});
  }
}

// Each character satisfying `pred` is its own match (HF's `impl Pattern for Fn(char) -> bool`).
template <typename Pred>
void char_matches(const std::string& text, Pred pred, std::vector<std::pair<size_t, size_t>>& out) {
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const char32_t c = utf8_decode_valid(text, i, &len);
    if (pred(c)) out.emplace_back(i, i + len);
    i += len;
  }
}

class SequencePreTokenizer final : public HfPreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<HfPreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(HfPiece&& in, std::vector<HfPiece>& out) const override {
    if (parts_.empty()) {
      if (!in.text.empty()) out.push_back(std::move(in));
      return;
    }
    std::vector<HfPiece> cur, next;
    cur.push_back(std::move(in));
    for (size_t k = 0; k < parts_.size(); ++k) {
      std::vector<HfPiece>& dst = k + 1 == parts_.size() ? out : next;
      for (HfPiece& p : cur) parts_[k]->split(std::move(p), dst);
      if (k + 1 < parts_.size()) {
        cur.swap(next);
        next.clear();
      }
    }
  }

 private:
  std::vector<std::unique_ptr<HfPreTokenizer>> parts_;
};

class SplitPreTokenizer final : public HfPreTokenizer {
 public:
  SplitPreTokenizer(HfPattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void split(HfPiece&& in, std::vector<HfPiece>& out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    pattern_.find_all(in.text, matches);
    std::vector<Span> spans;
    cover(in.text.size(), matches, invert_, spans);
    split_with_behavior(std::move(in), spans, behavior_, out);
  }

 private:
  HfPattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Maps each byte to its GPT-2 stand-in character.
std::string byte_level_map(const std::string& s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) out += byte_level_char(static_cast<uint8_t>(c));
  return out;
}

const char kGpt2Pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevelPreTokenizer final : public HfPreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<HfRegex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void split(HfPiece&& in, std::vector<HfPiece>& out) const override {
    if (add_prefix_space_ && (in.text.empty() || in.text[0] != ' ')) in.text.insert(0, 1, ' ');
    if (regex_ == nullptr) {
      if (!in.text.empty()) out.push_back({byte_level_map(in.text), in.at_start});
      return;
    }
    std::vector<std::pair<size_t, size_t>> matches;
    regex_->find_all(in.text, matches);
    std::vector<Span> spans;
    cover(in.text.size(), matches, false, spans);
    for (const Span& s : spans) {
      if (s.end == s.start) continue;
      out.push_back({byte_level_map(in.text.substr(s.start, s.end - s.start)), in.at_start && s.start == 0});
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<HfRegex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public HfPreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(HfPiece&& in, std::vector<HfPiece>& out) const override {
    std::string s;
    s.reserve(in.text.size() + replacement_.size());
    for (char c : in.text) {
      if (c == ' ') s += replacement_;
      else s += c;
    }
    const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && in.at_start)))
      s.insert(0, replacement_);
    HfPiece piece{std::move(s), in.at_start};
    if (!split_) {
      if (!piece.text.empty()) out.push_back(std::move(piece));
      return;
    }
    std::vector<std::pair<size_t, size_t>> matches;
    for (size_t pos = 0; (pos = piece.text.find(replacement_, pos)) != std::string::npos; pos += replacement_.size())
      matches.emplace_back(pos, pos + replacement_.size());
    std::vector<Span> spans;
    cover(piece.text.size(), matches, false, spans);
    split_with_behavior(std::move(piece), spans, SplitBehavior::kMergedWithNext, out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class CharPredicatePreTokenizer final : public HfPreTokenizer {
 public:
  enum class Kind { kDigits, kWhitespaceSplit };
  CharPredicatePreTokenizer(Kind kind, SplitBehavior behavior) : kind_(kind), behavior_(behavior) {}
  void split(HfPiece&& in, std::vector<HfPiece>& out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    if (kind_ == Kind::kDigits) char_matches(in.text, unicode_is_numeric, matches);
    else char_matches(in.text, unicode_is_whitespace, matches);
    std::vector<Span> spans;
    cover(in.text.size(), matches, false, spans);
    split_with_behavior(std::move(in), spans, behavior_, out);
  }

 private:
  Kind kind_;
  SplitBehavior behavior_;
};

Result<SplitBehavior> parse_behavior(const HfJsonObject& obj) {
  std::string b;
  MOEPP_RETURN_IF_ERROR(obj.get_string("behavior", &b, true));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return obj.error(obj.field("behavior"), "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
                   *obj.find("behavior"));
}

}  // namespace

Result<std::unique_ptr<HfPreTokenizer>> parse_hf_pre_tokenizer(const HfJsonObject& obj) {
  const Json& j = obj.json();
  if (j.is_null()) return std::unique_ptr<HfPreTokenizer>();
  if (!j.is_object()) return obj.error(obj.path(), "an object or null", j);
  std::string type;
  MOEPP_RETURN_IF_ERROR(obj.get_string("type", &type, true));
  if (type == "Sequence") {
    MOEPP_ASSIGN_OR_RETURN(auto parts, parse_component_list<HfPreTokenizer>(obj, "pretokenizers", parse_hf_pre_tokenizer));
    return std::unique_ptr<HfPreTokenizer>(new SequencePreTokenizer(std::move(parts)));
  }
  if (type == "Split") {
    MOEPP_ASSIGN_OR_RETURN(HfPattern pattern, parse_hf_pattern(obj, "pattern"));
    MOEPP_ASSIGN_OR_RETURN(SplitBehavior behavior, parse_behavior(obj));
    bool invert = false;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("invert", &invert));
    return std::unique_ptr<HfPreTokenizer>(new SplitPreTokenizer(std::move(pattern), behavior, invert));
  }
  if (type == "ByteLevel") {
    bool add_prefix_space = true, use_regex = true;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("add_prefix_space", &add_prefix_space));
    MOEPP_RETURN_IF_ERROR(obj.get_bool("use_regex", &use_regex));
    std::unique_ptr<HfRegex> regex;
    if (use_regex) {
      MOEPP_ASSIGN_OR_RETURN(regex, HfRegex::compile(kGpt2Pattern, obj.file() + ": " + obj.path()));
    }
    return std::unique_ptr<HfPreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(regex)));
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    MOEPP_RETURN_IF_ERROR(obj.get_string("replacement", &replacement, false));
    if (replacement.empty()) return obj.error(obj.field("replacement"), "a one-character string", *obj.find("replacement"));
    // Older files spell the scheme as add_prefix_space (true = always).
    bool add_prefix_space = true;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("add_prefix_space", &add_prefix_space));
    PrependScheme scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
    std::string scheme_name;
    MOEPP_RETURN_IF_ERROR(obj.get_string("prepend_scheme", &scheme_name, false));
    if (scheme_name == "always") scheme = PrependScheme::kAlways;
    else if (scheme_name == "first") scheme = PrependScheme::kFirst;
    else if (scheme_name == "never") scheme = PrependScheme::kNever;
    else if (!scheme_name.empty())
      return obj.error(obj.field("prepend_scheme"), "one of always, first, never", *obj.find("prepend_scheme"));
    bool split = true;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("split", &split));
    return std::unique_ptr<HfPreTokenizer>(new MetaspacePreTokenizer(replacement, scheme, split));
  }
  if (type == "Digits") {
    bool individual = false;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("individual_digits", &individual));
    return std::unique_ptr<HfPreTokenizer>(new CharPredicatePreTokenizer(
        CharPredicatePreTokenizer::Kind::kDigits, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<HfPreTokenizer>(
        new CharPredicatePreTokenizer(CharPredicatePreTokenizer::Kind::kWhitespaceSplit, SplitBehavior::kRemoved));
  }
  if (type == "Whitespace") {
    // HF: split on Invert(\w+|[^\w\s]+) with Removed, i.e. keep the matches.
    HfPattern pattern;
    MOEPP_ASSIGN_OR_RETURN(pattern.regex, HfRegex::compile("\\w+|[^\\w\\s]+", obj.file() + ": " + obj.path()));
    return std::unique_ptr<HfPreTokenizer>(new SplitPreTokenizer(std::move(pattern), SplitBehavior::kRemoved, true));
  }
  return obj.error(obj.field("type"),
                   "a supported pre_tokenizer (Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, "
                   "WhitespaceSplit)",
                   *obj.find("type"));
}

}  // namespace moepp
