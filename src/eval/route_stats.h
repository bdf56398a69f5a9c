// Routing statistics from recorded routing plans: FFN experts per token, per-layer expert load,
// share of each expert kind, routing-weight spread, and comparisons by token and token class.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moe/moe_spec.h"

namespace moepp {

// What the router chose for a run of tokens, every layer.
struct RouteRecord {
  int64_t n_layers = 0, n_tokens = 0;
  int top_k = 0;
  std::vector<std::vector<ExpertKind>> kinds;  // [n_layers][n_experts]
  std::vector<int32_t> experts;                // [n_layers, n_tokens, top_k], selection order
  std::vector<float> weights;                  // [n_layers, n_tokens, top_k]
  std::vector<float> score_var;                // [n_layers, n_tokens] variance of the router's probabilities over experts

  size_t at(int64_t layer, int64_t token, int k) const {
    return static_cast<size_t>((layer * n_tokens + token) * top_k + k);
  }
};

// Coarse token classes for the by-token comparison (the paper contrasts verbs, nouns and word
// fragments; without a tagger we separate word starts, fragments, punctuation, numbers).
enum class TokenClass { kWordStart, kFragment, kPunctuation, kNumber, kByte, kSpecial, kUnknown };
constexpr int kTokenClasses = 7;
const char* token_class_name(TokenClass c);
// piece: as the vocabulary spells it ("▁the", "Ġthe", "ing", "<0x0A>"); empty = unknown.
TokenClass classify_piece(std::string_view piece, bool is_special);

struct TokenInfo {
  int32_t id = 0;
  std::string piece;  // empty without a tokenizer
  TokenClass cls = TokenClass::kUnknown;
};

constexpr int kExpertKinds = 4;  // indexed by static_cast<int>(ExpertKind)

struct LayerRouteStats {
  std::vector<int64_t> load;                // [n_experts] (token, slot) pairs routed to each expert
  std::array<double, kExpertKinds> kind_share{};  // share of the layer's slots per kind
  double mean_ffn = 0.0;                    // FFN experts per token on this layer
  double weight_mean = 0.0, weight_var = 0.0;  // over every selected (token, slot) weight
  double top1_mean = 0.0, top1_var = 0.0;      // over tokens, of the first-selected expert's weight
  // Router scores: per token the variance of its probabilities over all experts (0 = the router
  // cannot decide, (1 - 1/N) / N = one expert takes everything); mean over tokens.
  double score_var = 0.0;
};

struct GroupStats {
  std::string label;  // the piece (or "#id") or the class name
  int32_t id = -1;    // token id for by-token groups
  TokenClass cls = TokenClass::kUnknown;
  int64_t count = 0;
  double mean_ffn = 0.0;
};

struct RouteStats {
  std::vector<int32_t> ffn_count;       // [n_layers, n_tokens] FFN experts chosen
  std::vector<double> ffn_per_token;    // [n_tokens] mean over layers
  double mean_ffn = 0.0;                // mean of ffn_per_token
  std::array<double, kExpertKinds> kind_share{};  // all layers
  std::vector<LayerRouteStats> layers;  // [n_layers]
  // [top_k * n_layers + 1]: tokens whose FFN count summed over layers is i (mean = i / n_layers)
  std::vector<int64_t> ffn_histogram;
  std::vector<GroupStats> by_token;     // distinct ids, fewest FFN experts first (ties: frequent first, then id)
  std::vector<GroupStats> by_class;     // classes present, in TokenClass order
};

// tokens: [n_tokens] (may be empty: no by-token groups).
RouteStats compute_route_stats(const RouteRecord& record, const std::vector<TokenInfo>& tokens);

}  // namespace moepp
