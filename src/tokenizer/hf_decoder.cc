// Decoders of tokenizers/src/decoders/*.rs. Invalid UTF-8 is repaired the way HF does: one
// U+FFFD per byte token in ByteFallback, from_utf8_lossy (per maximal subpart) in ByteLevel.
#include "tokenizer/hf_decoder.h"

#include "tokenizer/hf_pattern.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {
namespace {

class SequenceDecoder final : public HfDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<HfDecoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<HfDecoder>> parts_;
};

class ReplaceDecoder final : public HfDecoder {
 public:
  ReplaceDecoder(HfPattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  HfPattern pattern_;
  std::string content_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallbackDecoder final : public HfDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    size_t n_bytes = 0;
    auto flush = [&] {
      if (n_bytes == 0) return;
      if (is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < n_bytes; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      n_bytes = 0;
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_digit(t[3]) >= 0 && hex_digit(t[4]) >= 0) {
        bytes.push_back(static_cast<char>(hex_digit(t[3]) * 16 + hex_digit(t[4])));
        ++n_bytes;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public HfDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public HfDecoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      for (size_t i = 0; i < t.size();) {
        size_t len = 0;
        chars.emplace_back(i, utf8_decode_valid(t, i, &len));
        i += len;
      }
      size_t start_cut = 0;
      for (size_t k = 0; k < start_ && k < chars.size(); ++k) {
        if (chars[k].second != content_) break;
        start_cut = k + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t k = 0; k < stop_ && k < chars.size(); ++k) {
        const size_t index = chars.size() - k - 1;
        if (chars[index].second != content_) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        t.clear();
        continue;
      }
      const size_t b0 = start_cut < chars.size() ? chars[start_cut].first : t.size();
      const size_t b1 = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
      t = t.substr(b0, b1 - b0);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ByteLevelDecoder final : public HfDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      const size_t mark = bytes.size();
      bool all_mapped = true;
      for (size_t i = 0; i < t.size();) {
        size_t len = 0;
        const int b = byte_level_byte(utf8_decode_valid(t, i, &len));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
        i += len;
      }
      if (!all_mapped) {  // e.g. an added token: its text is used as is
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder final : public HfDecoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!(k == 0 && strip_first_)) out += ' ';
          pos += replacement_.size();
        } else {
          out += t[pos++];
        }
      }
      t.swap(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class BpeSuffixDecoder final : public HfDecoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    HfPattern p;
    p.literal = suffix_;
    for (size_t k = 0; k < tokens.size(); ++k) tokens[k] = p.replace_all(tokens[k], k + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

Result<char32_t> single_char(const HfJsonObject& obj, const char* key, const std::string& fallback) {
  std::string s = fallback;
  MOEPP_RETURN_IF_ERROR(obj.get_string(key, &s, fallback.empty()));
  size_t len = 0;
  if (s.empty() || (utf8_decode_valid(s, 0, &len), len != s.size()))
    return obj.error(obj.field(key), "a one-character string", Json(s));
  return utf8_decode_valid(s, 0, &len);
}

}  // namespace

Result<std::unique_ptr<HfDecoder>> parse_hf_decoder(const HfJsonObject& obj) {
  const Json& j = obj.json();
  if (j.is_null()) return std::unique_ptr<HfDecoder>();
  if (!j.is_object()) return obj.error(obj.path(), "an object or null", j);
  std::string type;
  MOEPP_RETURN_IF_ERROR(obj.get_string("type", &type, true));
  if (type == "Sequence") {
    MOEPP_ASSIGN_OR_RETURN(auto parts, parse_component_list<HfDecoder>(obj, "decoders", parse_hf_decoder));
    return std::unique_ptr<HfDecoder>(new SequenceDecoder(std::move(parts)));
  }
  if (type == "Replace") {
    MOEPP_ASSIGN_OR_RETURN(HfPattern pattern, parse_hf_pattern(obj, "pattern"));
    std::string content;
    MOEPP_RETURN_IF_ERROR(obj.get_string("content", &content, true));
    return std::unique_ptr<HfDecoder>(new ReplaceDecoder(std::move(pattern), std::move(content)));
  }
  if (type == "ByteFallback") return std::unique_ptr<HfDecoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<HfDecoder>(new FuseDecoder());
  if (type == "ByteLevel") return std::unique_ptr<HfDecoder>(new ByteLevelDecoder());
  if (type == "Strip") {
    MOEPP_ASSIGN_OR_RETURN(char32_t content, single_char(obj, "content", ""));
    int64_t start = 0, stop = 0;
    MOEPP_RETURN_IF_ERROR(obj.get_int("start", &start, false));
    MOEPP_RETURN_IF_ERROR(obj.get_int("stop", &stop, false));
    if (start < 0 || stop < 0) return obj.error(obj.field("start"), "non-negative start and stop", Json(std::min(start, stop)));
    return std::unique_ptr<HfDecoder>(new StripDecoder(content, static_cast<size_t>(start), static_cast<size_t>(stop)));
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    MOEPP_RETURN_IF_ERROR(obj.get_string("replacement", &replacement, false));
    if (replacement.empty()) return obj.error(obj.field("replacement"), "a one-character string", *obj.find("replacement"));
    bool add_prefix_space = true;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("add_prefix_space", &add_prefix_space));
    std::string scheme;
    MOEPP_RETURN_IF_ERROR(obj.get_string("prepend_scheme", &scheme, false));
    const bool strip_first = scheme.empty() ? add_prefix_space : scheme != "never";
    return std::unique_ptr<HfDecoder>(new MetaspaceDecoder(replacement, strip_first));
  }
  if (type == "BPEDecoder") {
    std::string suffix = "</w>";
    MOEPP_RETURN_IF_ERROR(obj.get_string("suffix", &suffix, false));
    return std::unique_ptr<HfDecoder>(new BpeSuffixDecoder(suffix));
  }
  return obj.error(obj.field("type"),
                   "a supported decoder (Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace, BPEDecoder)",
                   *obj.find("type"));
}

}  // namespace moepp
