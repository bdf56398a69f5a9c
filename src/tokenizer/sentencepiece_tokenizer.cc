// SentencePieceTokenizer: libsentencepiece for the model, plus the added-token splitting and
// BOS/EOS/legacy handling of transformers' slow LlamaTokenizer (semantics in the header).
#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

#include "platform/mapped_file.h"
#include "tokenizer/backends.h"

namespace moepp {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"
// Ids beyond the model that added_tokens_decoder may claim; more is a corrupt config.
constexpr int64_t kMaxAddedBeyondModel = 1 << 20;

// Appended to a serialized ModelProto, protobuf's merge semantics set
// normalizer_spec (field 3) . add_dummy_prefix (field 3) = false: what transformers does to the
// model for legacy=false (LlamaTokenizer.get_spm_processor).
constexpr char kNoDummyPrefixPatch[] = {0x1a, 0x02, 0x18, 0x00};

// Length of the Python-str.isspace() character at the start of `s` (0 if none): ASCII
// whitespace, U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028/9, U+202F,
// U+205F, U+3000. HF's lstrip/rstrip use Python's strip().
size_t space_len_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const size_t n = s.size() - i;
  const unsigned c = b(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xC2 && n >= 2 && (b(i + 1) == 0x85 || b(i + 1) == 0xA0)) return 2;
  if (c == 0xE1 && n >= 3 && b(i + 1) == 0x9A && b(i + 2) == 0x80) return 3;
  if (c == 0xE2 && n >= 3 && b(i + 1) == 0x80) {
    const unsigned d = b(i + 2);
    if (d <= 0x8A || d == 0xA8 || d == 0xA9 || d == 0xAF) return 3;
  }
  if (c == 0xE2 && n >= 3 && b(i + 1) == 0x81 && b(i + 2) == 0x9F) return 3;
  if (c == 0xE3 && n >= 3 && b(i + 1) == 0x80 && b(i + 2) == 0x80) return 3;
  return 0;
}

std::string_view lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t k = space_len_at(s, i);
    if (k == 0) break;
    i += k;
  }
  return s.substr(i);
}

std::string_view rstrip(std::string_view s) {
  // Walk forward so multi-byte spaces are recognised; remember where the trailing run began.
  size_t i = 0, run_start = 0;
  bool in_run = false;
  while (i < s.size()) {
    const size_t k = space_len_at(s, i);
    if (k > 0) {
      if (!in_run) run_start = i;
      in_run = true;
      i += k;
    } else {
      in_run = false;
      ++i;
    }
  }
  return in_run ? s.substr(0, run_start) : s;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

void append_ids(const std::vector<int>& ids, size_t from, std::vector<int32_t>* out) {
  for (size_t i = from; i < ids.size(); ++i) out->push_back(static_cast<int32_t>(ids[i]));
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer() = default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::create(std::string_view serialized,
                                                                               const TokenizerConfig& config,
                                                                               const std::string& name,
                                                                               bool allow_fast_bpe) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  MOEPP_RETURN_IF_ERROR(t->init(serialized, config, name, allow_fast_bpe));
  return t;
}

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::open(const std::string& model_path,
                                                                             const TokenizerConfig& config,
                                                                             bool allow_fast_bpe) {
  MOEPP_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(model_path));
  const std::string_view bytes(file->size() == 0 ? "" : reinterpret_cast<const char*>(file->data()),
                               file->size());
  return create(bytes, config, model_path, allow_fast_bpe);
}

Status SentencePieceTokenizer::init(std::string_view serialized, const TokenizerConfig& config,
                                    const std::string& name, bool allow_fast_bpe) {
  if (serialized.empty())
    return Status::Error(name + ": expected a SentencePiece model (serialized ModelProto), got an empty file");
  // LoadFromSerializedProto parses the protobuf and validates the model (unk defined, byte
  // pieces present with byte_fallback, no duplicate or empty pieces, ...) and reports failure
  // as a status; no abort path on bad bytes was found (random mutations, truncations, crafted
  // protos in tests/tokenizer/sentencepiece_test.cc).
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto st = sp_->LoadFromSerializedProto(serialized);
  if (!st.ok())
    return Status::Error(name + ": expected a SentencePiece model (serialized ModelProto), got bytes libsentencepiece rejects (" +
                         st.ToString() + ")");
  n_pieces_ = sp_->GetPieceSize();
  if (n_pieces_ <= 0)
    return Status::Error(name + ": pieces: expected at least one piece, got " + std::to_string(n_pieces_));
  vocab_size_ = n_pieces_;

  legacy_ = config.legacy.value_or(true);
  add_bos_ = config.add_bos_token.value_or(true);
  add_eos_ = config.add_eos_token.value_or(false);
  if (!legacy_) {
    std::string patched(serialized);
    patched.append(kNoDummyPrefixPatch, sizeof(kNoDummyPrefixPatch));
    sp_no_prefix_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st2 = sp_no_prefix_->LoadFromSerializedProto(patched);
    if (!st2.ok())
      return Status::Error(name + ": legacy=false: could not load the model with add_dummy_prefix off (" +
                           st2.ToString() + ")");
  }

  // Added tokens from the config, by id; ids past the model extend the vocabulary.
  for (const auto& [id, spec] : config.added_tokens_decoder) {
    if (id < 0 || id >= n_pieces_ + kMaxAddedBeyondModel)
      return Status::Error(name + ": added_tokens_decoder: expected ids below " +
                           std::to_string(n_pieces_ + kMaxAddedBeyondModel) + ", got " + std::to_string(id));
    vocab_size_ = std::max<int64_t>(vocab_size_, int64_t{id} + 1);
    AddedToken t;
    t.text = spec.content;
    t.id = id;
    t.special = spec.special;
    t.lstrip = spec.lstrip;
    t.rstrip = spec.rstrip;
    t.single_word = spec.single_word;
    added_ids_[t.text] = id;
    added_text_by_id_[id] = t.text;
    added_.push_back(std::move(t));
  }
  const auto resolve = [&](const std::string& text, int fallback) -> int32_t {
    if (!text.empty()) {
      const int32_t id = token_to_id(text);
      if (id >= 0) return id;
    }
    return fallback >= 0 && fallback < n_pieces_ ? fallback : -1;
  };
  bos_id_ = resolve(config.bos_token, sp_->bos_id());
  eos_id_ = resolve(config.eos_token, sp_->eos_id());
  const int32_t unk_id = resolve(config.unk_token, sp_->unk_id());
  const int32_t pad_id = config.pad_token.empty() ? -1 : resolve(config.pad_token, -1);
  unk_text_ = !config.unk_token.empty() ? config.unk_token : (unk_id >= 0 ? piece(unk_id) : std::string("<unk>"));
  if (allow_fast_bpe) init_fast_bpe(serialized);
  else no_fast_bpe_reason_ = "disabled by the caller";
  if (sp_no_prefix_) {
    std::vector<int> ids;
    (void)sp_no_prefix_->Encode(unk_text_, &ids);
    unk_prefix_len_ = ids.size();
  }
  // The special tokens' texts are split off too (HF adds them to its added-token trie).
  for (int32_t id : {bos_id_, eos_id_, unk_id, pad_id}) {
    if (id < 0) continue;
    const std::string text = piece(id);
    if (text.empty() || added_ids_.count(text) || added_text_by_id_.count(id)) continue;
    AddedToken t;
    t.text = text;
    t.id = id;
    t.special = true;
    added_ids_[text] = id;
    added_text_by_id_[id] = text;
    added_.push_back(std::move(t));
  }

  special_.assign(static_cast<size_t>(vocab_size_), 0);
  for (int32_t id = 0; id < n_pieces_; ++id) special_[id] = sp_->IsControl(id) || sp_->IsUnknown(id);
  for (const AddedToken& t : added_)
    if (t.special) special_[t.id] = 1;

  // Matching table: by first byte, longest first, so the first hit at a position is the
  // leftmost-longest match.
  std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    const auto fa = static_cast<unsigned char>(a.text[0]), fb = static_cast<unsigned char>(b.text[0]);
    if (fa != fb) return fa < fb;
    return a.text.size() > b.text.size();
  });
  size_t k = 0;
  for (int b = 0; b < 256; ++b) {
    added_by_byte_[b] = static_cast<uint32_t>(k);
    while (k < added_.size() && static_cast<unsigned char>(added_[k].text[0]) == b) ++k;
  }
  added_by_byte_[256] = static_cast<uint32_t>(k);
  return Status::Ok();
}

// The fast encoder must give libsentencepiece's ids; a disagreement on these probes (a model
// feature it misreads) keeps libsentencepiece.
void SentencePieceTokenizer::init_fast_bpe(std::string_view serialized) {
  bpe_ = SpmBpeEncoder::create(serialized, &no_fast_bpe_reason_);
  if (!bpe_) return;
  static const char* const kProbes[] = {
      "Hello world", " grabbed  ", "           grabbed", "\ttabs\t\t\tout here\n\n", "ax\n####\nboo",
      "\xE9\x95\x87 \xF0\x9F\xA6\x99\xEA\x99\x8A", "\xFF\xFE abc \xC3\x28 \xED\xA0\x80", "<s></s><unk>",
      "1,000,000.25 e\xCC\x81", "\xE2\x96\x81\xE2\x96\x81hello\xE2\x96\x81", "The quick brown fox jumps over the lazy dog."};
  for (const char* probe : kProbes) {
    for (int variant = 0; variant < 2; ++variant) {
      sentencepiece::SentencePieceProcessor* sp = variant == 0 ? sp_.get() : sp_no_prefix_.get();
      if (sp == nullptr) continue;
      std::vector<int> want;
      (void)sp->Encode(probe, &want);
      std::vector<int32_t> got;
      bpe_->encode(probe, variant == 0 ? bpe_->model_adds_dummy_prefix() : false, &got);
      if (!std::equal(want.begin(), want.end(), got.begin(), got.end())) {
        bpe_.reset();
        no_fast_bpe_reason_ = std::string("disagrees with libsentencepiece on '") + probe + "'";
        return;
      }
    }
  }
}

int32_t SentencePieceTokenizer::sp_piece_id(std::string_view piece) const {
  const int id = sp_->PieceToId(piece);  // the unk id when absent
  if (id < 0 || id >= n_pieces_ || sp_->IdToPiece(id) != piece) return -1;
  return id;
}

int32_t SentencePieceTokenizer::token_to_id(std::string_view text) const {
  auto it = added_ids_.find(std::string(text));
  if (it != added_ids_.end()) return it->second;
  return sp_piece_id(text);
}

std::string SentencePieceTokenizer::piece(int32_t id) const {
  if (id >= 0 && id < n_pieces_) return sp_->IdToPiece(id);
  auto it = added_text_by_id_.find(id);
  return it == added_text_by_id_.end() ? std::string() : it->second;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size_ && special_[static_cast<size_t>(id)] != 0;
}

std::vector<SentencePieceTokenizer::Segment> SentencePieceTokenizer::split(std::string_view text,
                                                                           bool special_too) const {
  std::vector<Segment> segs;
  size_t seg_start = 0, p = 0;
  while (p < text.size()) {
    const auto b = static_cast<unsigned char>(text[p]);
    const AddedToken* found = nullptr;
    for (uint32_t k = added_by_byte_[b]; k < added_by_byte_[b + 1]; ++k) {
      const AddedToken& t = added_[k];
      if (!special_too && t.special) continue;
      if (text.compare(p, t.text.size(), t.text) != 0) continue;
      // single_word (approximation of HF's merge-back): only as a whole word between spaces.
      if (t.single_word) {
        const size_t end = p + t.text.size();
        if ((p > seg_start && text[p - 1] != ' ') || (end < text.size() && text[end] != ' ')) continue;
      }
      found = &t;
      break;
    }
    if (found == nullptr) {
      ++p;
      continue;
    }
    if (p > seg_start) segs.push_back(Segment{text.substr(seg_start, p - seg_start), -1, nullptr});
    segs.push_back(Segment{std::string_view(), found->id, found});
    p += found->text.size();
    seg_start = p;
  }
  if (seg_start < text.size()) segs.push_back(Segment{text.substr(seg_start), -1, nullptr});
  // lstrip/rstrip swallow the whitespace next to the token (Python str.strip semantics).
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i].token == nullptr) continue;
    if (segs[i].token->rstrip && i + 1 < segs.size() && segs[i + 1].token == nullptr)
      segs[i + 1].text = lstrip(segs[i + 1].text);
    if (segs[i].token->lstrip && i > 0 && segs[i - 1].token == nullptr) segs[i - 1].text = rstrip(segs[i - 1].text);
  }
  return segs;
}

void SentencePieceTokenizer::encode_segment_legacy(std::string_view text, std::vector<int32_t>* out) const {
  if (bpe_) {
    bpe_->encode(text, bpe_->model_adds_dummy_prefix(), out);
    return;
  }
  std::vector<int> ids;
  (void)sp_->Encode(text, &ids);  // fails only when no model is loaded
  append_ids(ids, 0, out);
}

// transformers' non-legacy LlamaTokenizer._tokenize: the model has add_dummy_prefix off;
// a segment starting with a space is encoded behind the unk text, whose pieces are then
// dropped, so SentencePiece keeps the space as written.
void SentencePieceTokenizer::encode_segment_no_prefix(std::string_view text, std::vector<int32_t>* out) const {
  std::vector<int> ids;
  if (!starts_with(text, kSpaceSymbol) && !starts_with(text, " ")) {
    if (bpe_) return bpe_->encode(text, false, out);
    (void)sp_no_prefix_->Encode(text, &ids);
    append_ids(ids, 0, out);
    return;
  }
  std::string joined = unk_text_;
  joined.append(text);
  if (bpe_) {
    std::vector<int32_t> all;
    bpe_->encode(joined, false, &all);
    out->insert(out->end(), all.begin() + static_cast<std::ptrdiff_t>(all.size() >= unk_prefix_len_ ? unk_prefix_len_ : 0),
                all.end());
    return;
  }
  (void)sp_no_prefix_->Encode(joined, &ids);
  append_ids(ids, ids.size() >= unk_prefix_len_ ? unk_prefix_len_ : 0, out);
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_special && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  if (legacy_) {
    if (added_.empty()) {
      if (!text.empty()) encode_segment_legacy(text, &out);
    } else {
      for (const Segment& s : split(text, options.parse_special)) {
        if (s.token != nullptr) out.push_back(s.id);
        else if (!s.text.empty()) encode_segment_legacy(s.text, &out);
      }
    }
  } else if (!text.empty()) {
    // text = "▁" + text.replace("▁", " ")
    std::string t(kSpaceSymbol);
    t.reserve(text.size() + 3);
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
        t.push_back(' ');
        i += kSpaceSymbol.size();
      } else {
        t.push_back(text[i++]);
      }
    }
    const size_t start = out.size();
    bool second_is_special = false;
    for (const Segment& s : split(t, options.parse_special)) {
      if (s.token != nullptr) {
        if (out.size() == start + 1) second_is_special = s.token->special;
        out.push_back(s.id);
      } else if (!s.text.empty()) {
        encode_segment_no_prefix(s.text, &out);
      }
    }
    // A lone "▁" in front of a leading special token is dropped.
    if (out.size() > start + 1 && second_is_special && sp_->IdToPiece(out[start]) == kSpaceSymbol)
      out.erase(out.begin() + static_cast<std::ptrdiff_t>(start));
  }
  if (options.add_special && add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  std::vector<int> run;
  const auto flush = [&] {
    if (run.empty()) return;
    std::string s;
    (void)sp_->Decode(run, &s);  // ids are in range: cannot fail
    // SentencePiece drops the "▁" of a run's first piece; keep it when text precedes the run.
    const int first = run.front();
    if (!out.empty() && (s.empty() || s[0] != ' ') && !sp_->IsByte(first) && !sp_->IsUnknown(first) &&
        !sp_->IsControl(first) && starts_with(sp_->IdToPiece(first), kSpaceSymbol))
      out.push_back(' ');
    out += s;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    if (special_[static_cast<size_t>(id)]) {
      if (skip_special) continue;
      flush();
      auto it = added_text_by_id_.find(id);
      out += it != added_text_by_id_.end() ? it->second : piece(id);
      continue;
    }
    if (id >= n_pieces_) {  // a non-special added token past the model: its text as is
      flush();
      out += piece(id);
      continue;
    }
    run.push_back(id);
  }
  flush();
  return out;
}

Result<std::unique_ptr<Tokenizer>> load_sentencepiece_tokenizer(const std::string& model_path,
                                                                const TokenizerConfig& config) {
  MOEPP_ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> t, SentencePieceTokenizer::open(model_path, config));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace moepp
