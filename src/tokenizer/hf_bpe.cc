// BPE as in tokenizers/src/models/bpe/{model,word}.rs: lowest merge rank first, then the
// leftmost pair; a heap over (rank, position) keeps long words (no pre-tokenizer) O(n log n).
#include "tokenizer/hf_bpe.h"

#include <cstdio>
#include <queue>

namespace moepp {

namespace {
constexpr char kMetaspace[] = "\xE2\x96\x81";  // U+2581
}  // namespace

bool BpeWordCache::get(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxWordBytes) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(std::string(word));
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeWordCache::put(std::string_view word, const std::vector<int32_t>& ids) const {
  if (word.size() > kMaxWordBytes) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.size() >= kMaxEntries) map_.clear();  // crude but bounded; refills with hot words
  map_.emplace(std::string(word), ids);
}

Result<std::unique_ptr<HfBpeModel>> HfBpeModel::parse(const HfJsonObject& obj) {
  const Json& j = obj.json();
  if (!j.is_object()) return obj.error(obj.path(), "an object", j);
  std::string type;
  MOEPP_RETURN_IF_ERROR(obj.get_string("type", &type, false));
  if (!type.empty() && type != "BPE")
    return obj.error(obj.field("type"), "a supported model (BPE)", *obj.find("type"));
  if (type.empty() && obj.find("merges") == nullptr)
    return obj.error(obj.path(), "expected a BPE model (with \"merges\"), got an object without \"type\" or \"merges\"");
  if (const Json* d = obj.find("dropout"); d != nullptr && !d->is_null()) {
    if (!d->is_number()) return obj.error(obj.field("dropout"), "null or a number", *d);
    if (d->get<double>() != 0.0) return obj.error(obj.field("dropout"), "null (dropout is for training only)", *d);
  }
  std::unique_ptr<HfBpeModel> m(new HfBpeModel());
  MOEPP_RETURN_IF_ERROR(obj.get_bool("fuse_unk", &m->fuse_unk_));
  MOEPP_RETURN_IF_ERROR(obj.get_bool("byte_fallback", &m->byte_fallback_));
  MOEPP_RETURN_IF_ERROR(obj.get_bool("ignore_merges", &m->ignore_merges_));
  MOEPP_RETURN_IF_ERROR(obj.get_string("continuing_subword_prefix", &m->prefix_, false));
  MOEPP_RETURN_IF_ERROR(obj.get_string("end_of_word_suffix", &m->suffix_, false));

  const Json* vocab = obj.find("vocab");
  if (vocab == nullptr || !vocab->is_object()) return obj.error(obj.field("vocab"), "an object {token: id}", vocab ? *vocab : Json());
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= kMaxTokenId)
      return obj.error(obj.field("vocab") + "[\"" + it.key() + "\"]", "an id in [0, 2^24)", it.value());
    max_id = std::max(max_id, it.value().get<int64_t>());
  }
  m->pieces_.resize(static_cast<size_t>(max_id + 1));
  m->has_piece_.assign(static_cast<size_t>(max_id + 1), false);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    m->vocab_.set(it.key(), id);
    m->pieces_[static_cast<size_t>(id)] = it.key();
    m->has_piece_[static_cast<size_t>(id)] = true;
  }

  std::string unk;
  MOEPP_RETURN_IF_ERROR(obj.get_string("unk_token", &unk, false));
  if (!unk.empty()) {
    m->unk_id_ = m->vocab_.get(unk);
    if (m->unk_id_ < 0) return obj.error(obj.field("unk_token"), "a token of the vocabulary", *obj.find("unk_token"));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    m->byte_ids_[b] = m->vocab_.get(name);
  }

  m->split_at_metaspace_ = !m->ignore_merges_ && m->prefix_.empty() && m->suffix_.empty() &&
                           m->vocab_.get(kMetaspace) >= 0;
  m->vocab_.for_each([&](const std::string& token, int32_t) {
    for (size_t p = token.find(kMetaspace, 1); p != std::string::npos; p = token.find(kMetaspace, p + 1))
      if (p < 3 || token.compare(p - 3, 3, kMetaspace) != 0) m->split_at_metaspace_ = false;
  });

  const Json* merges = obj.find("merges");
  if (merges == nullptr || !merges->is_array()) return obj.error(obj.field("merges"), "an array", merges ? *merges : Json());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& e = (*merges)[i];
    const std::string where = obj.field("merges") + "[" + std::to_string(i) + "]";
    std::string a, b;
    if (e.is_string()) {
      // Legacy "a b": the separator is the first space (tokens never contain a raw space here).
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        return obj.error(where, "\"left right\" (two tokens separated by one space)", e);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return obj.error(where, "\"left right\" or [\"left\", \"right\"]", e);
    }
    const int32_t a_id = m->vocab_.get(a), b_id = m->vocab_.get(b);
    if (a_id < 0 || b_id < 0)
      return obj.error(where, "expected tokens of the vocabulary, got \"" + (a_id < 0 ? a : b) + "\" which is not");
    if (b.size() < m->prefix_.size())
      return obj.error(where, "expected a right token starting with continuing_subword_prefix, got \"" + b + "\"");
    const std::string merged = a + b.substr(m->prefix_.size());
    const int32_t new_id = m->vocab_.get(merged);
    if (new_id < 0) return obj.error(where, "expected a merge whose result is in the vocabulary, got \"" + merged + "\" which is not");
    // A repeated pair keeps its last rank, as HF's HashMap collect does.
    m->merges_.set(a_id, b_id, BpeMerge{static_cast<int32_t>(i), new_id});
  }
  return m;
}

void HfBpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = vocab_.get(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (split_at_metaspace_ && word.size() > 3) {
    size_t start = 0;
    for (size_t p = word.find(kMetaspace, 1); p != std::string_view::npos; p = word.find(kMetaspace, p + 3)) {
      if (p >= 3 && word.compare(p - 3, 3, kMetaspace) == 0) continue;  // inside a "▁" run
      tokenize_cached(word.substr(start, p - start), out);
      start = p;
    }
    tokenize_cached(word.substr(start), out);
    return;
  }
  tokenize_cached(word, out);
}

void HfBpeModel::tokenize_cached(std::string_view word, std::vector<int32_t>& out) const {
  const size_t before = out.size();
  if (cache_.get(word, out)) return;
  merge_word(word, out);
  if (word.size() <= BpeWordCache::kMaxWordBytes)
    cache_.put(word, std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;
  bool alive;
};

struct QueuedMerge {
  int32_t rank, pos, new_id;
  // std::priority_queue is a max-heap: "greater" means later.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void HfBpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  int32_t pending_unk = -1;  // fused unk waiting to be emitted (HF keeps it aside the same way)
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, -1, true});
    if (n > 0) sym[static_cast<size_t>(n - 1)].next = n;
  };
  std::string s;
  for (size_t i = 0; i < word.size();) {
    const auto lead = static_cast<uint8_t>(word[i]);
    size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    if (i + len > word.size()) len = word.size() - i;
    const bool is_first = i == 0, is_last = i + len == word.size();
    std::string_view c = word.substr(i, len);
    i += len;
    std::string_view key = c;
    if ((!is_first && !prefix_.empty()) || (is_last && !suffix_.empty())) {
      s.clear();
      if (!is_first) s += prefix_;
      s += c;
      if (is_last) s += suffix_;
      key = s;
    }
    const int32_t id = vocab_.get(key);
    if (id >= 0) {
      if (pending_unk >= 0) {
        add(pending_unk);
        pending_unk = -1;
      }
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char b : key) all &= byte_ids_[static_cast<uint8_t>(b)] >= 0;
      if (all) {
        for (char b : key) add(byte_ids_[static_cast<uint8_t>(b)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);

  if (sym.size() > 1) {
    std::priority_queue<QueuedMerge> queue;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      const BpeMerge m = merges_.get(sym[k].id, sym[k + 1].id);
      if (m.rank >= 0) queue.push({m.rank, static_cast<int32_t>(k), m.new_id});
    }
    while (!queue.empty()) {
      const QueuedMerge top = queue.top();
      queue.pop();
      Symbol& left = sym[static_cast<size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = sym[static_cast<size_t>(left.next)];
      const BpeMerge now = merges_.get(left.id, right.id);
      if (now.rank < 0 || now.new_id != top.new_id) continue;  // stale entry (HF compares new_id only)
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) {
        const BpeMerge m = merges_.get(sym[static_cast<size_t>(left.prev)].id, left.id);
        if (m.rank >= 0) queue.push({m.rank, left.prev, m.new_id});
      }
      if (left.next >= 0) {
        const BpeMerge m = merges_.get(left.id, sym[static_cast<size_t>(left.next)].id);
        if (m.rank >= 0) queue.push({m.rank, top.pos, m.new_id});
      }
    }
  }
  for (const Symbol& x : sym)
    if (x.alive) out.push_back(x.id);
}

}  // namespace moepp
