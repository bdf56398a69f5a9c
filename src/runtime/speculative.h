// Speculative decoding: a cheap drafter proposes K tokens, the target model scores all of them in
// one batched forward pass (each chosen expert's weights read once for the K+1 positions), and
// the standard acceptance rule keeps the output distribution exactly the target's own: greedy
// decoding gives the same tokens as plain greedy decoding; sampled decoding the same distribution.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace moepp {

// Proposes continuations of the committed tokens (prompt + output so far).
class Drafter {
 public:
  virtual ~Drafter() = default;
  // Up to k tokens (fewer, or none, when it has no guess). probs (out): per token the draft
  // distribution it was drawn from [vocab]; left empty for a deterministic guess (one-hot).
  virtual Status propose(const std::vector<int32_t>& committed, int k, std::vector<int32_t>* tokens,
                         std::vector<std::vector<float>>* probs) = 0;
  // The target accepted a prefix: the first n_valid committed tokens are final.
  virtual void rollback(int64_t n_valid) {}
  virtual const char* name() const = 0;
};

// A second model (or the target itself with fewer experts per token) with its own KV cache.
class ModelDrafter : public Drafter {
 public:
  ModelDrafter(const Model& model, ThreadPool& pool, const SamplingParams& sampling, std::string name);
  Status propose(const std::vector<int32_t>& committed, int k, std::vector<int32_t>* tokens,
                 std::vector<std::vector<float>>* probs) override;
  void rollback(int64_t n_valid) override;
  const char* name() const override { return name_.c_str(); }

 private:
  const Model& model_;
  ThreadPool& pool_;
  KvCache cache_;
  int32_t seq_;
  Sampler sampler_;
  std::string name_;
};

// Prompt lookup: the tokens that followed the latest earlier occurrence of the last n tokens
// (n = max_ngram down to 1). Free to run; strong on text that repeats its context.
class NgramDrafter : public Drafter {
 public:
  explicit NgramDrafter(int max_ngram = 3) : max_ngram_(max_ngram) {}
  Status propose(const std::vector<int32_t>& committed, int k, std::vector<int32_t>* tokens,
                 std::vector<std::vector<float>>* probs) override;
  const char* name() const override { return "ngram"; }

 private:
  int max_ngram_;
};

struct SpeculativeOptions {
  int draft_n = 4;        // K: tokens proposed per verify step (the starting value when adaptive)
  bool adaptive = true;   // grow K after a fully accepted step, shrink it after a poor one
  int max_draft_n = 8;
};

struct SpeculativeStats {
  int64_t verify_steps = 0;
  int64_t drafted = 0;    // draft tokens proposed
  int64_t accepted = 0;   // draft tokens the target kept
  int64_t generated = 0;
  double seconds = 0;     // prompt excluded
  // N: draft tokens accepted per verify step.
  double accepted_per_step() const { return verify_steps ? static_cast<double>(accepted) / static_cast<double>(verify_steps) : 0; }
  // p solving 1p + 2p^2 + 3p^3 + ... = p / (1 - p)^2 = N: the per-token hit rate that N implies.
  double implied_hit_rate() const;
  double acceptance_rate() const { return drafted ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0; }
};

// The acceptance rule over one verify pass. logits: [drafts.size() + 1, vocab] the target's
// logits at the last committed token and at each draft; draft_probs as Drafter::propose gives
// them. Returns how many drafts are kept; *next (out) is the target's token after them (the
// correction at the first rejection, or the bonus token when all are kept).
int64_t accept_drafts(Sampler& sampler, const float* logits, int64_t vocab, const std::vector<int32_t>& drafts,
                      const std::vector<std::vector<float>>& draft_probs, int32_t* next);

// K for the next step: one more after a fully accepted step, one fewer after a step that kept
// fewer than half (at least 1, at most max_k).
int next_draft_n(int k, int64_t drafted, int64_t accepted, int max_k);

// Like generate() (same options, same stop rules), with a drafter. on_token as in generate().
Result<std::vector<int32_t>> generate_speculative(ThreadPool& pool, const Model& target, Drafter& drafter,
                                                  const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                                  const SpeculativeOptions& spec,
                                                  const std::function<bool(int32_t)>& on_token, SpeculativeStats* stats,
                                                  KvCache* cache_out = nullptr, int32_t* seq_out = nullptr);

}  // namespace moepp
