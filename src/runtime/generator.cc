// Prompt prefill, then incremental decoding with the KV cache.
#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

namespace moepp {

Result<std::vector<int32_t>> generate(ThreadPool& pool, const Model& model, const std::vector<int32_t>& prompt,
                                      const GenerateOptions& options,
                                      const std::function<bool(int32_t)>& on_token, GenerateStats* stats) {
  MOEPP_RETURN_IF_ERROR(options.sampling.validate());
  if (prompt.empty()) return Status::Error("prompt: expected at least one token, got none");
  using clock = std::chrono::steady_clock;
  KvCache cache = model.make_cache();
  const int32_t seq = cache.add_sequence();
  Sampler sampler(options.sampling);
  const int64_t vocab = model.config().vocab_size;
  const auto& eos = model.config().eos_token_ids;

  Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.add(prompt[i], static_cast<int32_t>(i), seq, i + 1 == prompt.size());
  std::vector<float> logits;
  auto t0 = clock::now();
  MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits));
  auto t1 = clock::now();
  std::vector<int32_t> out;
  int64_t position = static_cast<int64_t>(prompt.size());
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    out.push_back(token);
    if (!on_token(token)) break;
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) break;
    if (std::find(options.extra_stop_ids.begin(), options.extra_stop_ids.end(), token) != options.extra_stop_ids.end()) break;
    if (static_cast<int64_t>(out.size()) == options.max_new_tokens) break;
    batch = Batch();
    batch.add(token, static_cast<int32_t>(position++), seq, true);
    MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits));
  }
  auto t2 = clock::now();
  if (stats != nullptr) {
    stats->prompt_tokens = static_cast<int64_t>(prompt.size());
    stats->generated_tokens = static_cast<int64_t>(out.size());
    stats->prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
    stats->generate_seconds = std::chrono::duration<double>(t2 - t1).count();
  }
  return out;
}

}  // namespace moepp
