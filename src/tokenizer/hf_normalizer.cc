// Normalizers of tokenizer.json (tokenizers/src/normalizers/*.rs); offsets are not tracked
// because encoding only needs the normalized text.
#include "tokenizer/hf_normalizer.h"

#include <cstdlib>
#include <vector>

#include <utf8proc.h>

#include "tokenizer/hf_pattern.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {
namespace {

class SequenceNormalizer final : public HfNormalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<HfNormalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<HfNormalizer>> parts_;
};

class PrependNormalizer final : public HfNormalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);  // HF leaves empty strings alone
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer final : public HfNormalizer {
 public:
  ReplaceNormalizer(HfPattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& s) const override { s = pattern_.replace_all(s, content_); }

 private:
  HfPattern pattern_;
  std::string content_;
};

class UnicodeNormalizer final : public HfNormalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    bool ascii = true;
    for (char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
    if (ascii) return;  // every normal form leaves ASCII unchanged
    utf8proc_uint8_t* dst = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                            static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                            static_cast<utf8proc_option_t>(options_));
    if (n >= 0 && dst != nullptr) s.assign(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
    std::free(dst);
  }

 private:
  int options_;
};

class LowercaseNormalizer final : public HfNormalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t len = 0;
      const char32_t c = utf8_decode_valid(s, i, &len);
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      i += len;
    }
    s.swap(out);
  }
};

class StripNormalizer final : public HfNormalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t begin = 0, end = s.size();
    if (left_) {
      while (begin < end) {
        size_t len = 0;
        if (!unicode_is_whitespace(utf8_decode_valid(s, begin, &len))) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
        size_t len = 0;
        if (!unicode_is_whitespace(utf8_decode_valid(s, start, &len))) break;
        end = start;
      }
    }
    s = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public HfNormalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t len = 0;
      const char32_t c = utf8_decode_valid(s, i, &len);
      const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME)
        out.append(s, i, len);
      i += len;
    }
    s.swap(out);
  }
};

}  // namespace

Result<std::unique_ptr<HfNormalizer>> parse_hf_normalizer(const HfJsonObject& obj) {
  const Json& j = obj.json();
  if (j.is_null()) return std::unique_ptr<HfNormalizer>();
  if (!j.is_object()) return obj.error(obj.path(), "an object or null", j);
  std::string type;
  MOEPP_RETURN_IF_ERROR(obj.get_string("type", &type, true));
  if (type == "Sequence") {
    MOEPP_ASSIGN_OR_RETURN(auto parts, parse_component_list<HfNormalizer>(obj, "normalizers", parse_hf_normalizer));
    return std::unique_ptr<HfNormalizer>(new SequenceNormalizer(std::move(parts)));
  }
  if (type == "Prepend") {
    std::string prepend;
    MOEPP_RETURN_IF_ERROR(obj.get_string("prepend", &prepend, true));
    return std::unique_ptr<HfNormalizer>(new PrependNormalizer(std::move(prepend)));
  }
  if (type == "Replace") {
    MOEPP_ASSIGN_OR_RETURN(HfPattern pattern, parse_hf_pattern(obj, "pattern"));
    std::string content;
    MOEPP_RETURN_IF_ERROR(obj.get_string("content", &content, true));
    return std::unique_ptr<HfNormalizer>(new ReplaceNormalizer(std::move(pattern), std::move(content)));
  }
  if (type == "NFC") return std::unique_ptr<HfNormalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::unique_ptr<HfNormalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (type == "NFKC")
    return std::unique_ptr<HfNormalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::unique_ptr<HfNormalizer>(new UnicodeNormalizer(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::unique_ptr<HfNormalizer>(new LowercaseNormalizer());
  if (type == "StripAccents") return std::unique_ptr<HfNormalizer>(new StripAccentsNormalizer());
  if (type == "Strip") {
    bool left = true, right = true;
    MOEPP_RETURN_IF_ERROR(obj.get_bool("strip_left", &left));
    MOEPP_RETURN_IF_ERROR(obj.get_bool("strip_right", &right));
    return std::unique_ptr<HfNormalizer>(new StripNormalizer(left, right));
  }
  return obj.error(obj.field("type"),
                   "a supported normalizer (Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
                   "StripAccents)",
                   *obj.find("type"));
}

}  // namespace moepp
