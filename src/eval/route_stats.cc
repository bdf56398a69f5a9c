// Plain counting over the record; variances are population variances (divide by n).
#include "eval/route_stats.h"

#include <algorithm>
#include <map>

namespace moepp {

const char* token_class_name(TokenClass c) {
  switch (c) {
    case TokenClass::kWordStart: return "word_start";
    case TokenClass::kFragment: return "fragment";
    case TokenClass::kPunctuation: return "punctuation";
    case TokenClass::kNumber: return "number";
    case TokenClass::kByte: return "byte";
    case TokenClass::kSpecial: return "special";
    case TokenClass::kUnknown: return "unknown";
  }
  return "unknown";
}

TokenClass classify_piece(std::string_view piece, bool is_special) {
  if (is_special) return TokenClass::kSpecial;
  if (piece.empty()) return TokenClass::kUnknown;
  if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>') return TokenClass::kByte;
  bool word_start = false;
  // SentencePiece "▁" (U+2581), byte-level BPE "Ġ" (U+0120), or a literal space.
  for (std::string_view marker : {std::string_view("\xE2\x96\x81"), std::string_view("\xC4\xA0"), std::string_view(" ")}) {
    if (piece.substr(0, marker.size()) == marker) {
      word_start = true;
      piece.remove_prefix(marker.size());
      break;
    }
  }
  if (piece.empty()) return TokenClass::kPunctuation;  // a bare space marker
  bool all_digit = true, all_punct = true;
  for (char ch : piece) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool digit = c >= '0' && c <= '9';
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
    all_digit = all_digit && digit;
    all_punct = all_punct && !digit && !alpha;
  }
  if (all_digit) return TokenClass::kNumber;
  if (all_punct) return TokenClass::kPunctuation;
  return word_start ? TokenClass::kWordStart : TokenClass::kFragment;
}

RouteStats compute_route_stats(const RouteRecord& r, const std::vector<TokenInfo>& tokens) {
  RouteStats s;
  const int64_t L = r.n_layers, T = r.n_tokens;
  const int K = r.top_k;
  s.ffn_count.assign(static_cast<size_t>(L * T), 0);
  s.ffn_per_token.assign(static_cast<size_t>(T), 0.0);
  s.layers.resize(static_cast<size_t>(L));
  std::array<int64_t, kExpertKinds> all_kinds{};
  for (int64_t l = 0; l < L; ++l) {
    LayerRouteStats& ls = s.layers[l];
    const std::vector<ExpertKind>& kinds = r.kinds[l];
    ls.load.assign(kinds.size(), 0);
    std::array<int64_t, kExpertKinds> kind_slots{};
    double wsum = 0.0, wsq = 0.0, t1sum = 0.0, t1sq = 0.0, svsum = 0.0;
    int64_t ffn_total = 0;
    for (int64_t t = 0; t < T; ++t) {
      for (int k = 0; k < K; ++k) {
        const int32_t e = r.experts[r.at(l, t, k)];
        const double w = r.weights[r.at(l, t, k)];
        if (e >= 0 && e < static_cast<int32_t>(kinds.size())) {
          ++ls.load[e];
          ++kind_slots[static_cast<int>(kinds[e])];
          if (kinds[e] == ExpertKind::kFfn) ++s.ffn_count[l * T + t];
        }
        wsum += w;
        wsq += w * w;
      }
      if (K > 0) {
        const double w1 = r.weights[r.at(l, t, 0)];
        t1sum += w1;
        t1sq += w1 * w1;
      }
      if (!r.score_var.empty()) svsum += r.score_var[static_cast<size_t>(l * T + t)];
      ffn_total += s.ffn_count[l * T + t];
      s.ffn_per_token[t] += s.ffn_count[l * T + t];
    }
    const double slots = static_cast<double>(T * K);
    for (int i = 0; i < kExpertKinds; ++i) {
      ls.kind_share[i] = slots > 0 ? static_cast<double>(kind_slots[i]) / slots : 0.0;
      all_kinds[i] += kind_slots[i];
    }
    if (T > 0) {
      ls.mean_ffn = static_cast<double>(ffn_total) / static_cast<double>(T);
      ls.weight_mean = wsum / slots;
      ls.weight_var = std::max(0.0, wsq / slots - ls.weight_mean * ls.weight_mean);
      ls.top1_mean = t1sum / static_cast<double>(T);
      ls.top1_var = std::max(0.0, t1sq / static_cast<double>(T) - ls.top1_mean * ls.top1_mean);
      ls.score_var = svsum / static_cast<double>(T);
    }
  }
  const double all_slots = static_cast<double>(L * T * K);
  for (int i = 0; i < kExpertKinds; ++i) s.kind_share[i] = all_slots > 0 ? static_cast<double>(all_kinds[i]) / all_slots : 0.0;

  s.ffn_histogram.assign(static_cast<size_t>(K * L + 1), 0);
  double sum = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t total = static_cast<int64_t>(s.ffn_per_token[t]);
    ++s.ffn_histogram[static_cast<size_t>(std::min<int64_t>(total, K * L))];
    s.ffn_per_token[t] = L > 0 ? s.ffn_per_token[t] / static_cast<double>(L) : 0.0;
    sum += s.ffn_per_token[t];
  }
  s.mean_ffn = T > 0 ? sum / static_cast<double>(T) : 0.0;

  if (static_cast<int64_t>(tokens.size()) == T) {
    std::map<int32_t, GroupStats> by_id;
    std::array<GroupStats, kTokenClasses> by_class;
    for (int64_t t = 0; t < T; ++t) {
      const TokenInfo& info = tokens[t];
      GroupStats& g = by_id[info.id];
      if (g.count == 0) {
        g.id = info.id;
        g.cls = info.cls;
        if (info.piece.empty()) {
          g.label = "#";
          g.label += std::to_string(info.id);
        } else {
          g.label = info.piece;
        }
      }
      ++g.count;
      g.mean_ffn += s.ffn_per_token[t];
      GroupStats& c = by_class[static_cast<int>(info.cls)];
      ++c.count;
      c.mean_ffn += s.ffn_per_token[t];
    }
    for (auto& [id, g] : by_id) {
      g.mean_ffn /= static_cast<double>(g.count);
      s.by_token.push_back(g);
    }
    std::sort(s.by_token.begin(), s.by_token.end(), [](const GroupStats& a, const GroupStats& b) {
      if (a.mean_ffn != b.mean_ffn) return a.mean_ffn < b.mean_ffn;
      if (a.count != b.count) return a.count > b.count;
      return a.id < b.id;
    });
    for (int c = 0; c < kTokenClasses; ++c) {
      GroupStats g = by_class[c];
      if (g.count == 0) continue;
      g.cls = static_cast<TokenClass>(c);
      g.label = token_class_name(g.cls);
      g.mean_ffn /= static_cast<double>(g.count);
      s.by_class.push_back(g);
    }
  }
  return s;
}

}  // namespace moepp
