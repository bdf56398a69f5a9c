// The prefix/read offset scheme of streaming detokenizers (TGI, vLLM): decode a small window
// twice and emit the difference once it no longer ends in U+FFFD.
#include "tokenizer/stream_decoder.h"

namespace moepp {
namespace {
bool ends_with_replacement_char(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

std::string StreamDecoder::decode_from(size_t begin, size_t end) const {
  return tokenizer_.decode(std::vector<int32_t>(ids_.begin() + begin, ids_.begin() + end), skip_special_);
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string prefix_text = decode_from(prefix_, read_);
  const std::string new_text = decode_from(prefix_, ids_.size());
  if (new_text.size() <= prefix_text.size() || ends_with_replacement_char(new_text)) return "";
  // Byte-level decoders can rewrite the tail of the prefix; emit only what extends it.
  if (new_text.compare(0, prefix_text.size(), prefix_text) != 0) return "";
  std::string out = new_text.substr(prefix_text.size());
  prefix_ = read_;
  read_ = ids_.size();
  return out;
}

std::string StreamDecoder::flush() {
  const std::string prefix_text = decode_from(prefix_, read_);
  const std::string all = decode_from(prefix_, ids_.size());
  prefix_ = read_ = ids_.size();
  return all.size() > prefix_text.size() ? all.substr(prefix_text.size()) : "";
}

}  // namespace moepp
