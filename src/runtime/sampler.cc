// Sampling: filter (top-k, then top-p over the temperature-scaled softmax), then draw.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace moepp {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    return Status::Error(str_format("temperature: expected a number >= 0, got %g", temperature));
  if (top_k < 0) return Status::Error(str_format("top_k: expected an integer >= 0, got %d", top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Status::Error(str_format("top_p: expected a number in (0, 1], got %g", top_p));
  return Status::Ok();
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

void Sampler::filter(const float* logits, int64_t vocab_size, std::vector<double>* probs) {
  candidates_.clear();
  for (int64_t i = 0; i < vocab_size; ++i) candidates_.emplace_back(logits[i] / params_.temperature, static_cast<int32_t>(i));
  auto by_score = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < candidates_.size()) {
    const size_t keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_score);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_score);
  }
  // Softmax over the kept candidates (sorted, so the max is first).
  probs->resize(candidates_.size());
  double sum = 0;
  for (size_t i = 0; i < candidates_.size(); ++i)
    sum += (*probs)[i] = std::exp(static_cast<double>(candidates_[i].first - candidates_[0].first));
  for (double& q : *probs) q /= sum;
  if (params_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double mass = 0;
    size_t n = 0;
    while (n < probs->size() && mass < params_.top_p) mass += (*probs)[n++];
    probs->resize(std::max<size_t>(n, 1));
  }
}

int32_t Sampler::sample(const float* logits, int64_t vocab_size) {
  if (params_.temperature == 0.0f) return argmax(logits, vocab_size);
  std::vector<double> probs;
  filter(logits, vocab_size, &probs);
  std::discrete_distribution<size_t> draw(probs.begin(), probs.end());
  return candidates_[draw(rng_)].second;
}

void Sampler::distribution(const float* logits, int64_t vocab_size, std::vector<float>* probs) {
  probs->assign(static_cast<size_t>(vocab_size), 0.0f);
  if (greedy()) {
    (*probs)[static_cast<size_t>(argmax(logits, vocab_size))] = 1.0f;
    return;
  }
  std::vector<double> kept;
  filter(logits, vocab_size, &kept);
  double mass = 0;
  for (double q : kept) mass += q;
  for (size_t i = 0; i < kept.size(); ++i) (*probs)[static_cast<size_t>(candidates_[i].second)] = static_cast<float>(kept[i] / mass);
}

int32_t Sampler::draw(const std::vector<float>& probs) {
  std::discrete_distribution<int32_t> d(probs.begin(), probs.end());
  return d(rng_);
}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

}  // namespace moepp
