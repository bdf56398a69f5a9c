// SpmBpeEncoder: the normaliser (identity + whitespace escaping), the BPE merge loop and the
// byte fallback of libsentencepiece (normalizer.cc, bpe_model.cc, sentencepiece_processor.cc),
// replicated step for step; differential tests and a fuzz target hold it to the library.
#include "tokenizer/sentencepiece_bpe.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>

namespace moepp {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// ModelProto piece types.
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Minimal protobuf wire-format reader (bounds-checked).
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  explicit Reader(std::string_view s)
      : p(reinterpret_cast<const uint8_t*>(s.data())), end(reinterpret_cast<const uint8_t*>(s.data()) + s.size()) {}
  bool done() const { return p >= end || !ok; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) {
        ok = false;
        return 0;
      }
      const uint8_t c = *p++;
      v |= uint64_t{c & 0x7fu} << shift;
      if (c < 0x80) return v;
    }
    ok = false;
    return 0;
  }
  // Reads one field: number, wire type, and for length-delimited fields the bytes.
  bool next(uint32_t* field, int* wire, uint64_t* value, std::string_view* bytes) {
    const uint64_t tag = varint();
    if (!ok) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire = static_cast<int>(tag & 7);
    switch (*wire) {
      case 0: *value = varint(); break;
      case 1:
        if (end - p < 8) return ok = false;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return ok = false;
        *value = uint64_t{p[0]} | uint64_t{p[1]} << 8 | uint64_t{p[2]} << 16 | uint64_t{p[3]} << 24;
        p += 4;
        break;
      case 2: {
        const uint64_t n = varint();
        if (!ok || n > static_cast<uint64_t>(end - p)) return ok = false;
        *bytes = std::string_view(reinterpret_cast<const char*>(p), n);
        p += n;
        break;
      }
      default: return ok = false;
    }
    return ok;
  }
};

struct PieceInfo {
  std::string piece;
  float score = 0;
  int type = kNormal;
};

struct ModelInfo {
  std::vector<PieceInfo> pieces;
  int model_type = 1;  // UNIGRAM
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  size_t charsmap_size = 0;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

// Sub-messages may occur more than once; protobuf merges them, as these readers do.
bool parse_model(std::string_view bytes, ModelInfo* m) {
  Reader r(bytes);
  uint32_t f;
  int w;
  uint64_t v = 0;
  std::string_view b;
  while (!r.done()) {
    if (!r.next(&f, &w, &v, &b)) return false;
    if (f == 1 && w == 2) {
      PieceInfo pi;
      Reader pr(b);
      while (!pr.done()) {
        uint32_t pf;
        int pw;
        uint64_t pv = 0;
        std::string_view pb;
        if (!pr.next(&pf, &pw, &pv, &pb)) return false;
        if (pf == 1 && pw == 2) pi.piece = std::string(pb);
        if (pf == 2 && pw == 5) {
          const uint32_t bits = static_cast<uint32_t>(pv);
          std::memcpy(&pi.score, &bits, 4);
        }
        if (pf == 3 && pw == 0) pi.type = static_cast<int>(pv);
      }
      m->pieces.push_back(std::move(pi));
    } else if (f == 2 && w == 2) {  // TrainerSpec
      Reader tr(b);
      while (!tr.done()) {
        uint32_t tf;
        int tw;
        uint64_t tv = 0;
        std::string_view tb;
        if (!tr.next(&tf, &tw, &tv, &tb)) return false;
        if (tw != 0) continue;
        if (tf == 3) m->model_type = static_cast<int>(tv);
        if (tf == 24) m->treat_whitespace_as_suffix = tv != 0;
        if (tf == 35) m->byte_fallback = tv != 0;
      }
    } else if (f == 3 && w == 2) {  // NormalizerSpec
      Reader nr(b);
      while (!nr.done()) {
        uint32_t nf;
        int nw;
        uint64_t nv = 0;
        std::string_view nb;
        if (!nr.next(&nf, &nw, &nv, &nb)) return false;
        if (nf == 2 && nw == 2) m->charsmap_size = nb.size();
        if (nw != 0) continue;
        if (nf == 3) m->add_dummy_prefix = nv != 0;
        if (nf == 4) m->remove_extra_whitespaces = nv != 0;
        if (nf == 5) m->escape_whitespaces = nv != 0;
      }
    }
  }
  return r.ok;
}

uint64_t hash_bytes(std::string_view s) {
  // 8 bytes at a time, then a multiply-xorshift finish: pieces are short.
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  uint64_t w = 0;
  for (size_t k = 0; i + k < s.size(); ++k) w |= uint64_t{static_cast<unsigned char>(s[i + k])} << (8 * k);
  h = (h ^ w) * 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

// libsentencepiece's DecodeUTF8 validity (strict: no overlongs, surrogates or > U+10FFFF);
// returns the length of a valid character at `s`, 0 when invalid.
size_t valid_utf8_len(const unsigned char* s, size_t n) {
  const unsigned c = s[0];
  if (c < 0x80) return 1;
  const auto trail = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  const auto valid_cp = [](uint32_t cp) { return cp < 0xD800 || (cp >= 0xE000 && cp <= 0x10FFFF); };
  if (n >= 2 && (c & 0xE0) == 0xC0) {
    const uint32_t cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    if (trail(s[1]) && cp >= 0x80 && valid_cp(cp)) return 2;
  } else if (n >= 3 && (c & 0xF0) == 0xE0) {
    const uint32_t cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    if (trail(s[1]) && trail(s[2]) && cp >= 0x800 && valid_cp(cp)) return 3;
  } else if (n >= 4 && (c & 0xF8) == 0xF0) {
    const uint32_t cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    if (trail(s[1]) && trail(s[2]) && trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) return 4;
  }
  return 0;
}

// libsentencepiece's OneCharLen (by lead byte), applied to already-valid UTF-8.
inline size_t one_char_len(unsigned char c) { return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4]; }

}  // namespace

void SpmBpeEncoder::Table::build(const std::vector<std::pair<std::string, std::pair<int32_t, float>>>& items) {
  size_t cap = 16;
  while (cap < items.size() * 2) cap <<= 1;
  slots.assign(cap, Entry{});
  mask = cap - 1;
  for (const auto& [key, val] : items) {
    const uint64_t h = hash_bytes(key);
    size_t i = h & mask;
    while (slots[i].id >= 0) i = (i + 1) & mask;
    slots[i] = Entry{h, static_cast<uint32_t>(storage.size()), static_cast<uint32_t>(key.size()), val.first, val.second};
    max_length = std::max(max_length, key.size());
    storage += key;
  }
}

const SpmBpeEncoder::Entry* SpmBpeEncoder::Table::find(std::string_view key) const {
  if (key.size() > max_length) return nullptr;
  const uint64_t h = hash_bytes(key);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Entry& e = slots[i];
    if (e.id < 0) return nullptr;
    if (e.hash == h && e.length == key.size() && std::memcmp(storage.data() + e.offset, key.data(), key.size()) == 0)
      return &e;
  }
}

std::unique_ptr<SpmBpeEncoder> SpmBpeEncoder::create(std::string_view serialized, std::string* why_not) {
  ModelInfo m;
  const auto no = [&](const char* why) -> std::unique_ptr<SpmBpeEncoder> {
    *why_not = why;
    return nullptr;
  };
  if (!parse_model(serialized, &m)) return no("the ModelProto did not parse");
  if (m.model_type != 2) return no("not a BPE model");
  if (m.charsmap_size != 0) return no("a precompiled_charsmap (non-identity normalisation)");
  if (m.remove_extra_whitespaces) return no("remove_extra_whitespaces");
  if (!m.escape_whitespaces) return no("escape_whitespaces off");
  if (m.treat_whitespace_as_suffix) return no("treat_whitespace_as_suffix");
  if (!m.byte_fallback) return no("no byte_fallback");

  std::unique_ptr<SpmBpeEncoder> e(new SpmBpeEncoder());
  e->add_dummy_prefix_ = m.add_dummy_prefix;
  std::vector<std::pair<std::string, std::pair<int32_t, float>>> normal, reserved;
  int n_unk = 0, n_bytes = 0;
  std::fill(std::begin(e->byte_ids_), std::end(e->byte_ids_), -1);
  bool split_ok = true;
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const PieceInfo& p = m.pieces[i];
    const auto id = static_cast<int32_t>(i);
    if (!(p.score == p.score)) return no("a NaN piece score");
    switch (p.type) {
      case kNormal:
        normal.push_back({p.piece, {id, p.score}});
        // "▁" after another character inside a piece would let a merge cross a run boundary.
        for (size_t k = 1; k + 3 <= p.piece.size() && split_ok; ++k)
          if (p.piece.compare(k, 3, kSpace) == 0 && (k < 3 || p.piece.compare(k - 3, 3, kSpace) != 0)) split_ok = false;
        break;
      case kUnknown:
        ++n_unk;
        e->unk_id_ = id;
        reserved.push_back({p.piece, {id, p.score}});
        break;
      case kControl: reserved.push_back({p.piece, {id, p.score}}); break;
      case kByte: {
        reserved.push_back({p.piece, {id, p.score}});
        unsigned v = 0;
        if (p.piece.size() == 6 && std::sscanf(p.piece.c_str(), "<0x%02X>", &v) == 1 && v < 256) {
          e->byte_ids_[v] = id;
          ++n_bytes;
        }
        break;
      }
      default: return no("user-defined or unused pieces");
    }
  }
  if (n_unk != 1) return no("not exactly one unknown piece");
  if (n_bytes != 256 || std::count(std::begin(e->byte_ids_), std::end(e->byte_ids_), -1) != 0)
    return no("not all 256 byte pieces");
  e->normal_.build(normal);
  e->reserved_.build(reserved);
  for (const auto& [piece, val] : normal)
    if (e->reserved_.find(piece) != nullptr) return no("a piece both normal and reserved");
  e->split_at_spaces_ = split_ok;
  return e;
}

struct SpmBpeEncoder::Scratch {
  struct Symbol {
    int32_t start, size, prev, next;
  };
  struct Pair {
    float score;
    int32_t left, right, size;
  };
  std::vector<Symbol> symbols;
  std::vector<Pair> agenda;
};

// bpe_model.cc Model::SampleEncode with alpha 0: repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring normal piece, ties to the leftmost; then map symbols to
// ids (reserved pieces first, then normal; unknown -> one byte piece per UTF-8 byte).
void SpmBpeEncoder::bpe(std::string_view chunk, Scratch* s, std::vector<int32_t>* out) const {
  auto& symbols = s->symbols;
  auto& agenda = s->agenda;
  symbols.clear();
  agenda.clear();
  for (size_t i = 0; i < chunk.size();) {
    const auto len = static_cast<int32_t>(std::min(one_char_len(static_cast<unsigned char>(chunk[i])), chunk.size() - i));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<int32_t>(i), len, index - 1, i + len < chunk.size() ? index + 1 : -1});
    i += static_cast<size_t>(len);
  }
  if (symbols.size() <= kSmallChunk) {
    merge_small(chunk, s);
  } else {
    merge_heap(chunk, s);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = chunk.substr(static_cast<size_t>(symbols[i].start), static_cast<size_t>(symbols[i].size));
    const Entry* e = reserved_.find(piece);
    if (e == nullptr) e = normal_.find(piece);
    if (e != nullptr && e->id != unk_id_) {
      out->push_back(e->id);
    } else {
      for (unsigned char c : piece) out->push_back(byte_ids_[c]);
    }
  }
}

// The merge loop with libsentencepiece's agenda: a heap of candidate pairs, higher score
// first, then smaller left index; stale entries are skipped when popped.
void SpmBpeEncoder::merge_heap(std::string_view chunk, Scratch* s) const {
  auto& symbols = s->symbols;
  auto& agenda = s->agenda;
  // priority_queue order of libsentencepiece: higher score first, then smaller left.
  const auto less = [](const Scratch::Pair& a, const Scratch::Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  const auto maybe_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t size = symbols[left].size + symbols[right].size;
    const Entry* e = normal_.find(chunk.substr(static_cast<size_t>(symbols[left].start), static_cast<size_t>(size)));
    if (e == nullptr) return;
    agenda.push_back({e->score, left, right, size});
    std::push_heap(agenda.begin(), agenda.end(), less);
  };
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!agenda.empty()) {
    std::pop_heap(agenda.begin(), agenda.end(), less);
    const Scratch::Pair top = agenda.back();
    agenda.pop_back();
    Scratch::Symbol& l = symbols[top.left];
    Scratch::Symbol& r = symbols[top.right];
    if (l.size == 0 || r.size == 0 || l.size + r.size != top.size) continue;  // stale
    l.size += r.size;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.size = 0;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }
}

// The same merges for a short chunk without the heap: the candidates are exactly the current
// adjacent pairs, so taking the best (score, then leftmost) of them each step is the same order.
void SpmBpeEncoder::merge_small(std::string_view chunk, Scratch* s) const {
  auto& symbols = s->symbols;
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  float score[kSmallChunk];  // score[i]: merging symbol i with its next, kNone if not a piece
  bool has[kSmallChunk];
  const auto eval = [&](int32_t left) {
    has[left] = false;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const Entry* e = normal_.find(chunk.substr(static_cast<size_t>(symbols[left].start),
                                               static_cast<size_t>(symbols[left].size + symbols[right].size)));
    if (e == nullptr) return;
    has[left] = true;
    score[left] = e->score;
  };
  for (size_t i = 0; i < symbols.size(); ++i) eval(static_cast<int32_t>(i));
  for (;;) {
    int32_t best = -1;
    float best_score = kNone;
    for (int32_t i = 0; i >= 0; i = symbols[i].next)
      if (has[i] && (best < 0 || score[i] > best_score)) {
        best = i;
        best_score = score[i];
      }
    if (best < 0) return;
    Scratch::Symbol& l = symbols[best];
    Scratch::Symbol& r = symbols[l.next];
    l.size += r.size;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = best;
    r.size = 0;
    if (l.prev >= 0) eval(l.prev);
    eval(best);
  }
}

void SpmBpeEncoder::encode(std::string_view text, bool add_dummy_prefix, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  // normalizer.cc with an empty charsmap: invalid UTF-8 bytes become U+FFFD one by one,
  // ' ' becomes "▁", and the dummy prefix goes in front.
  // Per-thread buffers: prompt-sized calls would otherwise spend their time allocating.
  thread_local std::string norm;
  thread_local Scratch scratch;
  norm.clear();
  norm.reserve(text.size() + text.size() / 4 + 3);
  if (add_dummy_prefix) norm += kSpace;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    if (p[i] == ' ') {
      norm += kSpace;
      ++i;
      continue;
    }
    if (p[i] < 0x80) {
      norm.push_back(static_cast<char>(p[i]));
      ++i;
      continue;
    }
    const size_t len = valid_utf8_len(p + i, n - i);
    if (len == 0) {
      norm += kReplacement;
      ++i;
    } else {
      norm.append(reinterpret_cast<const char*>(p + i), len);
      i += len;
    }
  }
  const std::string_view all(norm);
  if (!split_at_spaces_) {
    bpe(all, &scratch, out);
    return;
  }
  // Runs: a chunk starts at each "▁" that follows another character. Long texts repeat their
  // words, so a chunk's ids are remembered for the rest of the call.
  const bool use_cache = all.size() >= 4096;
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> cache;  // chunk -> ids in `out`
  const auto run = [&](std::string_view chunk) {
    if (!use_cache || chunk.size() > 64) return bpe(chunk, &scratch, out);
    auto it = cache.find(chunk);
    if (it != cache.end()) {
      const size_t from = it->second.first, count = it->second.second;
      for (size_t k = 0; k < count; ++k) out->push_back((*out)[from + k]);
      return;
    }
    const size_t from = out->size();
    bpe(chunk, &scratch, out);
    cache.emplace(chunk, std::make_pair(from, out->size() - from));
  };
  size_t start = 0;
  const char* data = all.data();
  for (size_t i = 3; i + 3 <= all.size(); ++i) {
    if (data[i] == kSpace[0] && all.compare(i, 3, kSpace) == 0 && all.compare(i - 3, 3, kSpace) != 0) {
      run(all.substr(start, i - start));
      start = i;
    }
  }
  run(all.substr(start));
}

}  // namespace moepp
