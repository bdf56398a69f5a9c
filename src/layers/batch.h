// A batch of tokens from one or more sequences, flattened: token i belongs to sequence
// seq_ids[i] at position positions[i]. A server with continuous batching puts several
// sequences in one batch; `moepp logits` puts one.
#pragma once

#include <cstdint>
#include <vector>

namespace moepp {

struct Batch {
  std::vector<int32_t> tokens;     // [n_tokens]
  std::vector<int32_t> positions;  // [n_tokens]
  std::vector<int32_t> seq_ids;    // [n_tokens], slots of the KV cache
  std::vector<uint8_t> want_logits;  // [n_tokens]: 1 if this token's logits are returned

  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  void add(int32_t token, int32_t position, int32_t seq_id, bool logits) {
    tokens.push_back(token);
    positions.push_back(position);
    seq_ids.push_back(seq_id);
    want_logits.push_back(logits ? 1 : 0);
  }
  int64_t n_outputs() const {
    int64_t n = 0;
    for (uint8_t w : want_logits) n += w;
    return n;
  }
};

}  // namespace moepp
