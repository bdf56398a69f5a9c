// SentencePieceTokenizer: a `tokenizer.model` (libsentencepiece) with Hugging Face's slow
// LlamaTokenizer semantics on top: BOS/EOS from tokenizer_config.json, added/special tokens
// typed in the text split off before SentencePiece sees it, legacy vs non-legacy spacing.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "tokenizer/sentencepiece_bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moepp {

// Encoding (reference: transformers' slow LlamaTokenizer, which for legacy=true is exactly
// SentencePiece run on each piece of text between added tokens):
//   [BOS if add_bos_token (default true)] + segments + [EOS if add_eos_token (default false)].
// With parse_special, the text is first split on the added tokens (added_tokens_decoder, and
// the bos/eos/unk/pad texts), leftmost-longest, honouring lstrip/rstrip/single_word; without
// it only non-special added tokens are split off (HF's split_special_tokens=True).
// The "▁" dummy prefix:
//   legacy=true (default, = SentencePiece): every text segment is encoded on its own and gets
//     the prefix, so "a</s>b" -> ▁a </s> ▁b. Without added tokens in the text this is exactly
//     sp.Encode(text).
//   legacy=false: HF's non-legacy path: text = "▁" + text.replace("▁", " "), split, segments
//     encoded with add_dummy_prefix off (segments starting with a space go through HF's
//     "<unk>"-prefix trick), and a leading lone "▁" before a special token is dropped; so only
//     the first segment carries the prefix: "a</s>b" -> ▁a </s> b.
// Decoding: runs of ordinary ids are decoded by SentencePiece (byte pieces -> UTF-8, invalid
// bytes -> U+FFFD as SentencePiece does, the first piece loses its "▁"); special ids (control,
// unknown, added special) are dropped with skip_special, else rendered as their text, and a run
// after rendered text keeps its leading space ("<s> Hello", as HF's decoder chain gives).
// Ids outside the vocabulary are skipped.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `serialized`: the bytes of a tokenizer.model; `name` prefixes error messages.
  // `allow_fast_bpe`: encode with SpmBpeEncoder where it covers the model (checked against
  // libsentencepiece on probe strings at load); false keeps libsentencepiece for everything.
  static Result<std::unique_ptr<SentencePieceTokenizer>> create(std::string_view serialized,
                                                                const TokenizerConfig& config,
                                                                const std::string& name, bool allow_fast_bpe = true);
  static Result<std::unique_ptr<SentencePieceTokenizer>> open(const std::string& model_path,
                                                              const TokenizerConfig& config,
                                                              bool allow_fast_bpe = true);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string piece(int32_t id) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t token_to_id(std::string_view text) const override;
  const char* kind() const override { return "sentencepiece"; }

  bool legacy() const { return legacy_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool uses_fast_bpe() const { return bpe_ != nullptr; }
  const std::string& fast_bpe_unavailable_reason() const { return no_fast_bpe_reason_; }

 private:
  struct AddedToken {
    std::string text;
    int32_t id = -1;
    bool special = false;
    bool lstrip = false, rstrip = false, single_word = false;
  };
  struct Segment {
    std::string_view text;  // when id < 0
    int32_t id = -1;
    const AddedToken* token = nullptr;
  };

  SentencePieceTokenizer();
  Status init(std::string_view serialized, const TokenizerConfig& config, const std::string& name, bool allow_fast_bpe);
  void init_fast_bpe(std::string_view serialized);
  int32_t sp_piece_id(std::string_view piece) const;  // -1 if not a piece of the model
  std::vector<Segment> split(std::string_view text, bool special_too) const;
  void encode_segment_legacy(std::string_view text, std::vector<int32_t>* out) const;
  void encode_segment_no_prefix(std::string_view text, std::vector<int32_t>* out) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;            // as in the file
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_no_prefix_;  // legacy=false only
  std::unique_ptr<SpmBpeEncoder> bpe_;  // same ids as sp_/sp_no_prefix_, faster; null if not covered
  std::string no_fast_bpe_reason_;
  bool legacy_ = true, add_bos_ = true, add_eos_ = false;
  int32_t bos_id_ = -1, eos_id_ = -1;
  int32_t n_pieces_ = 0;     // pieces in the SentencePiece model
  int64_t vocab_size_ = 0;   // n_pieces_ or more when added tokens lie beyond it
  std::string unk_text_;
  size_t unk_prefix_len_ = 0;  // ids SentencePiece (no prefix) gives for unk_text_
  std::vector<AddedToken> added_;  // sorted by first byte, then longest first
  std::array<uint32_t, 257> added_by_byte_{};  // added_[added_by_byte_[b] .. added_by_byte_[b+1])
  std::unordered_map<std::string, int32_t> added_ids_;
  std::unordered_map<int32_t, std::string> added_text_by_id_;
  std::vector<uint8_t> special_;  // per id
};

}  // namespace moepp
