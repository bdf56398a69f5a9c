#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace moepp {

double SpeculativeStats::implied_hit_rate() const {
  // N p^2 - (2N + 1) p + N = 0, the root in [0, 1).
  const double n = accepted_per_step();
  if (n <= 0) return 0;
  return ((2 * n + 1) - std::sqrt(4 * n + 1)) / (2 * n);
}

ModelDrafter::ModelDrafter(const Model& model, ThreadPool& pool, const SamplingParams& sampling, std::string name)
    : model_(model), pool_(pool), cache_(model.make_cache()), seq_(cache_.add_sequence()), sampler_(sampling),
      name_(std::move(name)) {}

void ModelDrafter::rollback(int64_t n_valid) {
  if (cache_.length(seq_) > n_valid) cache_.truncate(seq_, n_valid);
}

Status ModelDrafter::propose(const std::vector<int32_t>& committed, int k, std::vector<int32_t>* tokens,
                             std::vector<std::vector<float>>* probs) {
  tokens->clear();
  probs->clear();
  if (k <= 0) return Status::Ok();
  const int64_t vocab = model_.config().vocab_size;
  // Catch up on the committed tokens it has not seen (the target's last correction, or more).
  Batch batch;
  const int64_t have = cache_.length(seq_);
  for (int64_t i = have; i < static_cast<int64_t>(committed.size()); ++i) {
    if (committed[static_cast<size_t>(i)] >= vocab) return Status::Error("draft: token id beyond the draft model's vocabulary");
    batch.add(committed[static_cast<size_t>(i)], static_cast<int32_t>(i), seq_, i + 1 == static_cast<int64_t>(committed.size()));
  }
  std::vector<float> logits;
  if (batch.size() == 0) return Status::Error("draft: nothing new to continue from");
  MOEPP_RETURN_IF_ERROR(model_.forward(pool_, batch, cache_, &logits));
  for (int i = 0; i < k; ++i) {
    int32_t token;
    if (sampler_.greedy()) {
      token = argmax(logits.data(), vocab);  // deterministic: probs stay empty (one-hot)
    } else {
      probs->emplace_back();
      sampler_.distribution(logits.data(), vocab, &probs->back());
      token = sampler_.draw(probs->back());
    }
    tokens->push_back(token);
    if (i + 1 == k) break;
    batch = Batch();
    batch.add(token, static_cast<int32_t>(cache_.length(seq_)), seq_, true);
    MOEPP_RETURN_IF_ERROR(model_.forward(pool_, batch, cache_, &logits));
  }
  return Status::Ok();
}

Status NgramDrafter::propose(const std::vector<int32_t>& committed, int k, std::vector<int32_t>* tokens,
                             std::vector<std::vector<float>>* probs) {
  tokens->clear();
  probs->clear();
  const int64_t size = static_cast<int64_t>(committed.size());
  for (int64_t n = std::min<int64_t>(max_ngram_, size - 1); n >= 1 && k > 0; --n) {
    const int32_t* pattern = committed.data() + size - n;
    // Latest earlier occurrence first: recent context predicts best.
    for (int64_t j = size - n - 1; j >= 0; --j) {
      if (!std::equal(pattern, pattern + n, committed.data() + j)) continue;
      for (int64_t t = j + n; t < size && static_cast<int>(tokens->size()) < k; ++t) tokens->push_back(committed[static_cast<size_t>(t)]);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

int64_t accept_drafts(Sampler& sampler, const float* logits, int64_t vocab, const std::vector<int32_t>& drafts,
                      const std::vector<std::vector<float>>& draft_probs, int32_t* next) {
  // Keep draft i with probability min(1, p_i(d) / q_i(d)); on the first rejection draw from the
  // residual max(0, p_i - q_i), normalised; after all are kept draw a bonus token from p_m. The
  // result is distributed exactly as the target's own sampling (greedy: argmax agreement).
  const int64_t m = static_cast<int64_t>(drafts.size());
  std::vector<float> p, residual;
  for (int64_t i = 0; i < m; ++i) {
    const float* row = logits + i * vocab;
    const int32_t d = drafts[static_cast<size_t>(i)];
    if (sampler.greedy()) {
      const int32_t best = argmax(row, vocab);
      if (best == d) continue;
      *next = best;
      return i;
    }
    sampler.distribution(row, vocab, &p);
    const bool one_hot = draft_probs.empty();
    const double q_d = one_hot ? 1.0 : draft_probs[static_cast<size_t>(i)][static_cast<size_t>(d)];
    if (q_d > 0 && sampler.uniform() < std::min(1.0, static_cast<double>(p[static_cast<size_t>(d)]) / q_d)) continue;
    residual.assign(p.size(), 0.0f);
    double mass = 0;
    for (size_t v = 0; v < p.size(); ++v) {
      const float q = one_hot ? (static_cast<int32_t>(v) == d ? 1.0f : 0.0f) : draft_probs[static_cast<size_t>(i)][v];
      residual[v] = std::max(0.0f, p[v] - q);
      mass += residual[v];
    }
    *next = sampler.draw(mass > 0 ? residual : p);
    return i;
  }
  *next = sampler.sample(logits + m * vocab, vocab);
  return m;
}

int next_draft_n(int k, int64_t drafted, int64_t accepted, int max_k) {
  if (drafted == 0) return k;
  if (accepted == drafted) return std::min(k + 1, max_k);
  if (2 * accepted < drafted) return std::max(k - 1, 1);
  return k;
}

Result<std::vector<int32_t>> generate_speculative(ThreadPool& pool, const Model& target, Drafter& drafter,
                                                  const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                                  const SpeculativeOptions& spec,
                                                  const std::function<bool(int32_t)>& on_token, SpeculativeStats* stats,
                                                  KvCache* cache_out, int32_t* seq_out) {
  MOEPP_RETURN_IF_ERROR(options.sampling.validate());
  if (prompt.empty()) return Status::Error("prompt: expected at least one token, got none");
  if (spec.draft_n < 1 || spec.draft_n > spec.max_draft_n)
    return Status::Error(str_format("--draft-n: expected 1..%d, got %d", spec.max_draft_n, spec.draft_n));
  using clock = std::chrono::steady_clock;
  KvCache own_cache = cache_out ? KvCache(1, 1, 1) : target.make_cache();
  KvCache& cache = cache_out ? *cache_out : own_cache;
  const int32_t seq = cache.add_sequence();
  if (seq_out) *seq_out = seq;
  Sampler sampler(options.sampling);
  const int64_t vocab = target.config().vocab_size;
  const auto& eos = target.config().eos_token_ids;
  SpeculativeStats local;
  SpeculativeStats& st = stats ? *stats : local;
  st = SpeculativeStats();

  std::vector<int32_t> committed = prompt;
  std::vector<int32_t> out;
  bool done = options.max_new_tokens <= 0;
  auto emit = [&](int32_t token) {
    out.push_back(token);
    committed.push_back(token);
    if (!on_token(token)) done = true;
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) done = true;
    if (std::find(options.extra_stop_ids.begin(), options.extra_stop_ids.end(), token) != options.extra_stop_ids.end()) done = true;
    if (static_cast<int64_t>(out.size()) >= options.max_new_tokens) done = true;
  };

  Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), seq, i + 1 == prompt.size());
  std::vector<float> logits;
  MOEPP_RETURN_IF_ERROR(target.forward(pool, batch, cache, &logits));
  const auto t0 = clock::now();
  if (!done) emit(sampler.sample(logits.data(), vocab));

  int k_now = spec.draft_n;
  std::vector<int32_t> drafts;
  std::vector<std::vector<float>> draft_probs;
  while (!done) {
    const int64_t n = static_cast<int64_t>(committed.size());  // the target's cache holds n - 1 of them
    const int64_t room = options.max_new_tokens - static_cast<int64_t>(out.size()) - 1;  // the last token is the target's
    MOEPP_RETURN_IF_ERROR(drafter.propose(committed, static_cast<int>(std::min<int64_t>(k_now, room)), &drafts, &draft_probs));
    const int64_t m = static_cast<int64_t>(drafts.size());
    batch = Batch();
    batch.add(committed.back(), static_cast<int32_t>(n - 1), seq, true);
    for (int64_t i = 0; i < m; ++i) {
      if (drafts[static_cast<size_t>(i)] < 0 || drafts[static_cast<size_t>(i)] >= vocab)
        return Status::Error("draft: proposed a token id beyond the target's vocabulary");
      batch.add(drafts[static_cast<size_t>(i)], static_cast<int32_t>(n + i), seq, true);
    }
    MOEPP_RETURN_IF_ERROR(target.forward(pool, batch, cache, &logits));  // [m + 1, vocab]

    int32_t next = -1;
    const int64_t accepted = accept_drafts(sampler, logits.data(), vocab, drafts, draft_probs, &next);
    ++st.verify_steps;
    st.drafted += m;
    st.accepted += accepted;
    // The cache keeps committed + the accepted drafts; the rejected positions are dropped.
    cache.truncate(seq, n + accepted);
    drafter.rollback(n + accepted);
    for (int64_t i = 0; i < accepted && !done; ++i) emit(drafts[static_cast<size_t>(i)]);
    if (!done) emit(next);
    if (spec.adaptive) k_now = next_draft_n(k_now, m, accepted, spec.max_draft_n);
  }
  st.generated = static_cast<int64_t>(out.size());
  st.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return out;
}

}  // namespace moepp
