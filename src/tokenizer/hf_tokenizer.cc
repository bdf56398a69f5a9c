// HfTokenizer: the tokenizer.json pipeline (tokenizers/src/tokenizer/mod.rs) plus the
// transformers-level BOS/EOS override from tokenizer_config.json.
#include "tokenizer/hf_tokenizer.h"

#include <fstream>
#include <sstream>
#include <unordered_set>
#include <vector>

#include "tokenizer/backends.h"
#include "tokenizer/hf_added_vocab.h"
#include "tokenizer/hf_bpe.h"
#include "tokenizer/hf_decoder.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/hf_normalizer.h"
#include "tokenizer/hf_pre_tokenizer.h"
#include "tokenizer/hf_unicode.h"

namespace moepp {
namespace {

// One step of the post-processor: ids before the sequence, ids after it.
struct HfTemplate {
  std::vector<int32_t> prefix, suffix;
};

class HfTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  std::string piece(int32_t id) const override {
    if (const HfAddedToken* t = added_.by_id(id)) return t->content;
    const std::string* p = model_->id_to_token(id);
    return p == nullptr ? std::string() : *p;
  }
  int64_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override {
    const HfAddedToken* t = added_.by_id(id);
    return t != nullptr && t->special;
  }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t token_to_id(std::string_view text) const override {
    const int32_t id = added_.id_of(text);
    return id >= 0 ? id : model_->token_to_id(text);
  }
  const char* kind() const override { return "tokenizer.json"; }

  std::unique_ptr<HfNormalizer> normalizer_;
  std::unique_ptr<HfPreTokenizer> pre_tokenizer_;
  std::unique_ptr<HfBpeModel> model_;
  std::unique_ptr<HfDecoder> decoder_;
  std::vector<HfTemplate> post_;  // applied in order when add_special
  HfAddedVocab added_;
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;

 private:
  void encode_text(std::string&& text, bool at_start, std::vector<int32_t>& ids) const;
};

void HfTokenizer::encode_text(std::string&& text, bool at_start, std::vector<int32_t>& ids) const {
  std::vector<HfPiece> pieces;
  if (pre_tokenizer_ != nullptr) {
    pre_tokenizer_->split(HfPiece{std::move(text), at_start}, pieces);
  } else if (!text.empty()) {
    pieces.push_back(HfPiece{std::move(text), at_start});
  }
  for (const HfPiece& p : pieces) model_->tokenize(p.text, ids);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view raw, const EncodeOptions& options) const {
  // HF only ever sees valid UTF-8 (Rust &str); repair anything else the way Rust would.
  const std::string text = utf8_lossy(raw);
  std::vector<int32_t> ids;
  std::vector<HfSegment> segments, inner;
  added_.split(text, /*normalized_set=*/false, options.parse_special, segments);
  for (const HfSegment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string normalized = text.substr(seg.start, seg.end - seg.start);
    if (normalizer_ != nullptr) normalizer_->normalize(normalized);
    if (normalized.empty()) continue;
    inner.clear();
    added_.split(normalized, /*normalized_set=*/true, options.parse_special, inner);
    if (inner.size() == 1 && inner[0].id < 0) {
      encode_text(std::move(normalized), seg.start == 0, ids);
      continue;
    }
    for (const HfSegment& s : inner) {
      if (s.id >= 0) ids.push_back(s.id);
      else encode_text(normalized.substr(s.start, s.end - s.start), seg.start == 0 && s.start == 0, ids);
    }
  }
  if (options.add_special) {
    for (const HfTemplate& t : post_) {
      if (t.prefix.empty() && t.suffix.empty()) continue;
      std::vector<int32_t> out;
      out.reserve(t.prefix.size() + ids.size() + t.suffix.size());
      out.insert(out.end(), t.prefix.begin(), t.prefix.end());
      out.insert(out.end(), ids.begin(), ids.end());
      out.insert(out.end(), t.suffix.begin(), t.suffix.end());
      ids.swap(out);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const HfAddedToken* t = added_.by_id(id)) {
      if (!(skip_special && t->special)) tokens.push_back(t->content);
      continue;
    }
    if (const std::string* p = model_->id_to_token(id)) tokens.push_back(*p);
    // Unknown ids are dropped, as HF does.
  }
  std::string out;
  if (decoder_ == nullptr) {
    for (size_t k = 0; k < tokens.size(); ++k) {
      if (k > 0) out += ' ';
      out += tokens[k];
    }
    return out;
  }
  decoder_->decode_chain(tokens);
  for (const auto& t : tokens) out += t;
  return out;
}

Result<std::vector<HfAddedToken>> parse_added_tokens(const HfJsonObject& root) {
  std::vector<HfAddedToken> out;
  const Json* list = root.find("added_tokens");
  if (list == nullptr || list->is_null()) return out;
  if (!list->is_array()) return root.error("added_tokens", "an array", *list);
  for (size_t i = 0; i < list->size(); ++i) {
    const HfJsonObject e = root.child((*list)[i], "added_tokens[" + std::to_string(i) + "]");
    if (!e.json().is_object()) return e.error(e.path(), "an object", e.json());
    HfAddedToken t;
    int64_t id = -1;
    MOEPP_RETURN_IF_ERROR(e.get_int("id", &id, true));
    if (id < 0 || id >= kMaxTokenId) return e.error(e.field("id"), "an id in [0, 2^24)", *e.find("id"));
    t.id = static_cast<int32_t>(id);
    MOEPP_RETURN_IF_ERROR(e.get_string("content", &t.content, true));
    MOEPP_RETURN_IF_ERROR(e.get_bool("special", &t.special));
    MOEPP_RETURN_IF_ERROR(e.get_bool("lstrip", &t.lstrip));
    MOEPP_RETURN_IF_ERROR(e.get_bool("rstrip", &t.rstrip));
    MOEPP_RETURN_IF_ERROR(e.get_bool("single_word", &t.single_word));
    t.normalized = !t.special;  // HF's default when the field is absent
    MOEPP_RETURN_IF_ERROR(e.get_bool("normalized", &t.normalized));
    out.push_back(std::move(t));
  }
  return out;
}

// Reads a post_processor into `out` (a list of prefix/suffix steps).
Status parse_post_processor(const HfJsonObject& obj, std::vector<HfTemplate>& out) {
  const Json& j = obj.json();
  if (j.is_null()) return Status::Ok();
  if (!j.is_object()) return obj.error(obj.path(), "an object or null", j);
  std::string type;
  MOEPP_RETURN_IF_ERROR(obj.get_string("type", &type, true));
  if (type == "ByteLevel") return Status::Ok();  // offsets only
  if (type == "Sequence") {
    const Json* list = obj.find("processors");
    if (list == nullptr || !list->is_array()) return obj.error(obj.field("processors"), "an array", list ? *list : Json());
    for (size_t i = 0; i < list->size(); ++i)
      MOEPP_RETURN_IF_ERROR(parse_post_processor(obj.child((*list)[i], obj.field("processors") + "[" + std::to_string(i) + "]"), out));
    return Status::Ok();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    // "cls": ["<s>", 0], "sep": ["</s>", 2]
    HfTemplate t;
    for (const char* key : {"cls", "sep"}) {
      const Json* v = obj.find(key);
      if (v == nullptr || !v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer())
        return obj.error(obj.field(key), "[token, id]", v ? *v : Json());
      (std::string(key) == "cls" ? t.prefix : t.suffix).push_back(static_cast<int32_t>((*v)[1].get<int64_t>()));
    }
    out.push_back(std::move(t));
    return Status::Ok();
  }
  if (type != "TemplateProcessing")
    return obj.error(obj.field("type"),
                     "a supported post_processor (TemplateProcessing, ByteLevel, Sequence, BertProcessing, "
                     "RobertaProcessing)",
                     *obj.find("type"));
  // special_tokens: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
  const Json* specials = obj.find("special_tokens");
  if (specials != nullptr && !specials->is_null() && !specials->is_object())
    return obj.error(obj.field("special_tokens"), "an object", *specials);
  auto special_ids = [&](const std::string& name, std::vector<int32_t>& dst) -> Status {
    const std::string where = obj.field("special_tokens") + "[\"" + name + "\"].ids";
    if (specials == nullptr || !specials->is_object() || !specials->contains(name))
      return obj.error(obj.field("single"), "expected special tokens listed in special_tokens, got \"" + name + "\" which is not");
    const Json& entry = (*specials)[name];
    if (!entry.is_object() || !entry.contains("ids") || !entry["ids"].is_array())
      return obj.error(where, "an array of ids", entry.is_object() && entry.contains("ids") ? entry["ids"] : entry);
    for (const Json& id : entry["ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) return obj.error(where, "non-negative integer ids", id);
      dst.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    return Status::Ok();
  };
  const Json* single = obj.find("single");
  if (single == nullptr) return obj.error(obj.field("single"), "expected a template, got nothing");
  HfTemplate t;
  bool seen_sequence = false;
  auto add_item = [&](bool is_sequence, const std::string& special) -> Status {
    if (is_sequence) {
      seen_sequence = true;
      return Status::Ok();
    }
    return special_ids(special, seen_sequence ? t.suffix : t.prefix);
  };
  if (single->is_string()) {
    // Compact form "<s> $A </s>" (with optional ":type_id" suffixes).
    std::istringstream ss(single->get<std::string>());
    std::string item;
    while (ss >> item) {
      const size_t colon = item.rfind(':');
      if (colon != std::string::npos && colon > 0) item = item.substr(0, colon);
      MOEPP_RETURN_IF_ERROR(add_item(!item.empty() && item[0] == '$', item));
    }
  } else if (single->is_array()) {
    for (size_t i = 0; i < single->size(); ++i) {
      const Json& item = (*single)[i];
      const std::string where = obj.field("single") + "[" + std::to_string(i) + "]";
      if (item.is_object() && item.contains("Sequence")) {
        MOEPP_RETURN_IF_ERROR(add_item(true, ""));
      } else if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
                 item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
        MOEPP_RETURN_IF_ERROR(add_item(false, item["SpecialToken"]["id"].get<std::string>()));
      } else {
        return obj.error(where, "{\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}", item);
      }
    }
  } else {
    return obj.error(obj.field("single"), "an array or a string", *single);
  }
  out.push_back(std::move(t));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> parse_hf_tokenizer(std::string_view json_text, const std::string& name,
                                                      const TokenizerConfig& config) {
  const Json root_json = Json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root_json.is_discarded()) return Status::Error(name + ": not valid JSON");
  if (!root_json.is_object())
    return Status::Error(name + ": expected a JSON object at the top level, got " + describe_json(root_json));
  const HfJsonObject root(root_json, name, "");
  auto tok = std::make_unique<HfTokenizer>();

  auto section = [&](const char* key) -> const Json& {
    static const Json kNull;
    const Json* v = root.find(key);
    return v == nullptr ? kNull : *v;
  };
  const Json& model = section("model");
  if (model.is_null()) return root.error("model", "expected an object, got nothing");
  MOEPP_ASSIGN_OR_RETURN(tok->model_, HfBpeModel::parse(root.child(model, "model")));
  MOEPP_ASSIGN_OR_RETURN(tok->normalizer_, parse_hf_normalizer(root.child(section("normalizer"), "normalizer")));
  MOEPP_ASSIGN_OR_RETURN(tok->pre_tokenizer_, parse_hf_pre_tokenizer(root.child(section("pre_tokenizer"), "pre_tokenizer")));
  MOEPP_ASSIGN_OR_RETURN(tok->decoder_, parse_hf_decoder(root.child(section("decoder"), "decoder")));
  MOEPP_RETURN_IF_ERROR(parse_post_processor(root.child(section("post_processor"), "post_processor"), tok->post_));

  MOEPP_ASSIGN_OR_RETURN(std::vector<HfAddedToken> added, parse_added_tokens(root));
  // transformers adds tokenizer_config.json's added_tokens_decoder too; tokenizer.json wins on
  // ids both define.
  {
    std::unordered_set<int32_t> have;
    for (const auto& t : added) have.insert(t.id);
    for (const auto& [id, spec] : config.added_tokens_decoder) {
      if (have.count(id) != 0 || spec.content.empty()) continue;
      HfAddedToken t;
      t.id = id;
      t.content = spec.content;
      t.special = spec.special;
      t.lstrip = spec.lstrip;
      t.rstrip = spec.rstrip;
      t.single_word = spec.single_word;
      t.normalized = spec.normalized;
      added.push_back(std::move(t));
    }
  }
  int64_t limit = tok->model_->id_limit();
  for (const auto& t : added) limit = std::max<int64_t>(limit, int64_t{t.id} + 1);
  tok->vocab_size_ = limit;
  for (const HfTemplate& t : tok->post_) {
    for (const auto* ids : {&t.prefix, &t.suffix})
      for (int32_t id : *ids)
        if (id < 0 || id >= limit)
          return Status::Error(name + ": post_processor: expected special token ids below the vocabulary size " +
                               std::to_string(limit) + ", got " + std::to_string(id));
  }
  tok->added_.build(std::move(added), tok->normalizer_.get());

  // The template's leading special token is the BOS HF adds; tokenizer_config.json names it too.
  int32_t template_bos = -1, template_eos = -1;
  for (const HfTemplate& t : tok->post_) {
    if (template_bos < 0 && !t.prefix.empty()) template_bos = t.prefix.front();
    if (template_eos < 0 && !t.suffix.empty()) template_eos = t.suffix.back();
  }
  auto config_token = [&](const std::string& text, const char* field, int32_t fallback) -> Result<int32_t> {
    if (text.empty()) return fallback;
    const int32_t id = tok->token_to_id(text);
    if (id < 0)
      return Status::Error("tokenizer_config.json: " + std::string(field) + ": expected a token of " + name +
                           ", got \"" + text + "\"");
    return id;
  };
  MOEPP_ASSIGN_OR_RETURN(tok->bos_id_, config_token(config.bos_token, "bos_token", template_bos));
  MOEPP_ASSIGN_OR_RETURN(tok->eos_id_, config_token(config.eos_token, "eos_token", template_eos));

  // transformers' LlamaTokenizerFast (and PreTrainedTokenizerFast given these flags) rebuilds the
  // post-processor as [BOS] $A [EOS] from add_bos_token/add_eos_token; the file's is then unused.
  if (config.add_bos_token.has_value() || config.add_eos_token.has_value()) {
    const bool add_bos = config.add_bos_token.value_or(false), add_eos = config.add_eos_token.value_or(false);
    if (add_bos && tok->bos_id_ < 0)
      return Status::Error("tokenizer_config.json: add_bos_token: expected a bos_token to go with true, got none");
    if (add_eos && tok->eos_id_ < 0)
      return Status::Error("tokenizer_config.json: add_eos_token: expected an eos_token to go with true, got none");
    HfTemplate t;
    if (add_bos) t.prefix.push_back(tok->bos_id_);
    if (add_eos) t.suffix.push_back(tok->eos_id_);
    tok->post_.assign(1, std::move(t));
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& json_path, const TokenizerConfig& config) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) return Status::Error(json_path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Error(json_path + ": read error");
  return parse_hf_tokenizer(ss.str(), json_path, config);
}

}  // namespace moepp
