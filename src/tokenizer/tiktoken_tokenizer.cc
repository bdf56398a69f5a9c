// tiktoken: split with the encoding's regex, then byte-level BPE where the pair to merge is the
// adjacent one whose concatenated bytes have the lowest rank (tiktoken's _byte_pair_merge),
// leftmost on ties.
#include "tokenizer/tiktoken_tokenizer.h"

#include <fstream>
#include <queue>
#include <sstream>
#include <utility>
#include <vector>

#include "tokenizer/backends.h"
#include "tokenizer/hf_added_vocab.h"
#include "tokenizer/hf_bpe.h"
#include "tokenizer/hf_hash_map.h"
#include "tokenizer/hf_regex.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {
namespace {

// Patterns and special tokens as in tiktoken_ext/openai_public.py.
const char kR50kPattern[] = "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char kCl100kPattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
const char kO200kPattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct EncodingSpec {
  const char* name;
  const char* pattern;
  std::vector<std::pair<const char*, int32_t>> specials;
};

const std::vector<EncodingSpec>& encoding_specs() {
  static const std::vector<EncodingSpec> specs = {
      {"r50k_base", kR50kPattern, {{"<|endoftext|>", 50256}}},
      {"gpt2", kR50kPattern, {{"<|endoftext|>", 50256}}},
      {"p50k_base", kR50kPattern, {{"<|endoftext|>", 50256}}},
      {"p50k_edit", kR50kPattern,
       {{"<|endoftext|>", 50256}, {"<|fim_prefix|>", 50281}, {"<|fim_middle|>", 50282}, {"<|fim_suffix|>", 50283}}},
      {"cl100k_base", kCl100kPattern,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {"o200k_base", kO200kPattern, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
  };
  return specs;
}

class TiktokenTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string piece(int32_t id) const override {
    if (id >= 0 && static_cast<size_t>(id) < special_of_.size() && special_of_[static_cast<size_t>(id)] >= 0)
      return specials_[static_cast<size_t>(special_of_[static_cast<size_t>(id)])].first;
    if (id >= 0 && static_cast<size_t>(id) < bytes_of_.size()) return bytes_of_[static_cast<size_t>(id)];
    return std::string();
  }
  int64_t vocab_size() const override { return static_cast<int64_t>(std::max(bytes_of_.size(), special_of_.size())); }
  bool is_special(int32_t id) const override {
    return id >= 0 && static_cast<size_t>(id) < special_of_.size() && special_of_[static_cast<size_t>(id)] >= 0;
  }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t token_to_id(std::string_view text) const override {
    for (const auto& [t, id] : specials_)
      if (t == text) return id;
    return ranks_.get(text);
  }
  const char* kind() const override { return "tiktoken"; }

  StringIdMap ranks_;                             // token bytes -> rank (= id)
  std::vector<std::string> bytes_of_;             // rank -> token bytes
  std::vector<std::pair<std::string, int32_t>> specials_;
  std::vector<int32_t> special_of_;               // id -> index in specials_, -1 if none
  HfTokenMatcher special_matcher_;
  std::unique_ptr<HfRegex> regex_;
  int32_t eos_id_ = -1;
  BpeWordCache cache_;

 private:
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
};

struct Part {
  size_t start, end;  // byte span of the current token
  int32_t prev, next;
  bool alive;
};

struct QueuedPair {
  int32_t rank;
  int32_t left;
  size_t right_end;  // identifies the right neighbour at push time
  bool operator<(const QueuedPair& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

void TiktokenTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const int32_t whole = ranks_.get(piece);
  if (whole >= 0) {
    out.push_back(whole);
    return;
  }
  const size_t before = out.size();
  if (cache_.get(piece, out)) return;
  std::vector<Part> parts(piece.size());
  for (size_t i = 0; i < piece.size(); ++i)
    parts[i] = {i, i + 1, static_cast<int32_t>(i) - 1, i + 1 < piece.size() ? static_cast<int32_t>(i + 1) : -1, true};
  std::priority_queue<QueuedPair> queue;
  auto push = [&](int32_t left) {
    const Part& l = parts[static_cast<size_t>(left)];
    if (l.next < 0) return;
    const Part& r = parts[static_cast<size_t>(l.next)];
    const int32_t rank = ranks_.get(piece.substr(l.start, r.end - l.start));
    if (rank >= 0) queue.push({rank, left, r.end});
  };
  for (size_t i = 0; i + 1 < piece.size(); ++i) push(static_cast<int32_t>(i));
  while (!queue.empty()) {
    const QueuedPair top = queue.top();
    queue.pop();
    Part& l = parts[static_cast<size_t>(top.left)];
    if (!l.alive || l.next < 0 || parts[static_cast<size_t>(l.next)].end != top.right_end) continue;
    Part& r = parts[static_cast<size_t>(l.next)];
    l.end = r.end;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) parts[static_cast<size_t>(r.next)].prev = top.left;
    if (l.prev >= 0) push(l.prev);
    push(top.left);
  }
  for (const Part& p : parts) {
    if (!p.alive) continue;
    const int32_t id = ranks_.get(piece.substr(p.start, p.end - p.start));
    if (id >= 0) out.push_back(id);  // single bytes always have ranks (checked at load)
  }
  cache_.put(piece, std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
}

void TiktokenTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::pair<size_t, size_t>> matches;
  regex_->find_all(text, matches);
  for (const auto& [s, e] : matches)
    if (e > s) encode_piece(text.substr(s, e - s), out);
}

std::vector<int32_t> TiktokenTokenizer::encode(std::string_view raw, const EncodeOptions& options) const {
  const std::string text = utf8_lossy(raw);  // tiktoken takes Python str: always valid
  std::vector<int32_t> out;
  size_t pos = 0;
  while (options.parse_special && pos < text.size()) {
    size_t s = 0, e = 0;
    const int32_t k = special_matcher_.find(text, pos, &s, &e);
    if (k < 0) break;
    encode_ordinary(std::string_view(text).substr(pos, s - pos), out);
    out.push_back(specials_[static_cast<size_t>(k)].second);
    pos = e;
  }
  if (pos < text.size()) encode_ordinary(std::string_view(text).substr(pos), out);
  return out;
}

std::string TiktokenTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (is_special(id)) {
      if (!skip_special) bytes += specials_[static_cast<size_t>(special_of_[static_cast<size_t>(id)])].first;
      continue;
    }
    if (id >= 0 && static_cast<size_t>(id) < bytes_of_.size()) bytes += bytes_of_[static_cast<size_t>(id)];
  }
  return utf8_lossy(bytes);
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    const int v = base64_value(in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  for (; i < in.size(); ++i)
    if (in[i] != '=') return false;
  return in.size() % 4 == 0;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> parse_tiktoken_tokenizer(std::string_view text, const std::string& name,
                                                            const std::string& encoding_name) {
  const EncodingSpec* spec = nullptr;
  for (const auto& s : encoding_specs())
    if (encoding_name == s.name) spec = &s;
  if (spec == nullptr)
    return Status::Error(name + ": encoding: expected one of r50k_base, gpt2, p50k_base, p50k_edit, cl100k_base, "
                                "o200k_base, got \"" + encoding_name + "\"");
  auto tok = std::make_unique<TiktokenTokenizer>();
  size_t line_no = 0, pos = 0;
  std::string bytes;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    if (sp == std::string_view::npos || !base64_decode(line.substr(0, sp), &bytes) || bytes.empty())
      return Status::Error(where + "expected \"<base64 token> <rank>\", got \"" + std::string(line.substr(0, 60)) + "\"");
    const std::string_view rank_text = line.substr(sp + 1);
    int64_t rank = 0;
    if (rank_text.empty() || rank_text.size() > 9) return Status::Error(where + "expected a decimal rank, got \"" + std::string(rank_text) + "\"");
    for (char c : rank_text) {
      if (c < '0' || c > '9') return Status::Error(where + "expected a decimal rank, got \"" + std::string(rank_text) + "\"");
      rank = rank * 10 + (c - '0');
    }
    if (rank >= kMaxTokenId) return Status::Error(where + "expected a rank below 2^24, got " + std::to_string(rank));
    if (tok->ranks_.get(bytes) >= 0) return Status::Error(where + "expected each token once, got a repeated token");
    tok->ranks_.set(bytes, static_cast<int32_t>(rank));
    if (static_cast<size_t>(rank) >= tok->bytes_of_.size()) tok->bytes_of_.resize(static_cast<size_t>(rank) + 1);
    tok->bytes_of_[static_cast<size_t>(rank)] = bytes;
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (tok->ranks_.get(std::string_view(&c, 1)) < 0)
      return Status::Error(name + ": expected a rank for every single byte, got none for byte " + std::to_string(b));
  }
  for (const auto& [t, id] : spec->specials) {
    const size_t k = tok->specials_.size();
    tok->specials_.emplace_back(t, id);
    if (static_cast<size_t>(id) >= tok->special_of_.size()) tok->special_of_.resize(static_cast<size_t>(id) + 1, -1);
    tok->special_of_[static_cast<size_t>(id)] = static_cast<int32_t>(k);
    tok->special_matcher_.add(t, static_cast<int32_t>(k));
    if (std::string_view(t) == "<|endoftext|>") tok->eos_id_ = id;
  }
  MOEPP_ASSIGN_OR_RETURN(tok->regex_, HfRegex::compile(spec->pattern, name + ": " + encoding_name + " pattern"));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

Result<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const std::string& path, const std::string& encoding_name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_tiktoken_tokenizer(ss.str(), path, encoding_name);
}

Result<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const std::string& path) {
  std::string stem = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (const size_t dot = stem.find('.'); dot != std::string::npos) stem = stem.substr(0, dot);
  return load_tiktoken_tokenizer(path, stem);
}

}  // namespace moepp
