// Token sampling from logits: greedy, or temperature + top-k + top-p with a seeded generator.
// Each sequence owns its Sampler, so a batch of sequences samples independently.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "base/status.h"

namespace moepp {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = all tokens
  float top_p = 1.0f;        // 1 = no nucleus cut
  uint64_t seed = 0;

  Status validate() const;   // ranges: temperature >= 0, top_k >= 0, 0 < top_p <= 1
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  // logits: [vocab_size]. Greedy ties go to the lowest id.
  int32_t sample(const float* logits, int64_t vocab_size);

  // The distribution sample() draws from, over the whole vocabulary: probs (out) [vocab_size],
  // zero outside the top-k / top-p set; one-hot at the argmax when greedy. Speculative
  // decoding needs it for the acceptance rule.
  void distribution(const float* logits, int64_t vocab_size, std::vector<float>* probs);
  int32_t draw(const std::vector<float>& probs);  // one token from a distribution
  double uniform();                               // in [0, 1), from this sampler's generator
  bool greedy() const { return params_.temperature == 0.0f; }

 private:
  // The kept candidates (sorted, in candidates_) and their probabilities after top-k, the
  // temperature softmax and the top-p cut (probs not renormalised after the cut).
  void filter(const float* logits, int64_t vocab_size, std::vector<double>* probs);

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace moepp
