#include "server/concurrency_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "server/batch_engine.h"

namespace moepp::server {

Status run_concurrency_bench(const Model& model, ThreadPool& pool, const std::vector<int64_t>& streams,
                             int64_t prompt_tokens, int64_t gen_tokens, uint64_t seed,
                             const std::function<void(const ConcurrencyRow&)>& sink) {
  using clock = std::chrono::steady_clock;
  if (prompt_tokens < 1 || gen_tokens < 1) return Status::Error("concurrency bench: expected prompt and generation lengths >= 1");
  std::mt19937_64 rng(seed);
  for (int64_t n : streams) {
    if (n < 1 || n > 256) return Status::Error(str_format("--concurrency: expected 1..256 streams, got %lld", static_cast<long long>(n)));
    EngineOptions options;
    options.parallel = static_cast<int>(n);
    options.max_queue = 0;
    options.step_tokens = std::max<int64_t>(512, n);
    BatchEngine engine(model, pool, options, nullptr);
    std::vector<std::shared_ptr<RequestStream>> handles;
    std::vector<clock::time_point> first(static_cast<size_t>(n)), last(static_cast<size_t>(n));
    std::vector<int64_t> counts(static_cast<size_t>(n), 0);
    const auto start = clock::now();
    for (int64_t i = 0; i < n; ++i) {
      EngineRequest r;
      std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model.config().vocab_size - 1));
      for (int64_t t = 0; t < prompt_tokens; ++t) r.prompt.push_back(token(rng));
      r.max_tokens = gen_tokens;  // no stop tokens: every stream runs its full length
      handles.push_back(engine.try_submit(std::move(r)));
      if (!handles.back()) return Status::Error("concurrency bench: the engine refused a stream");
    }
    std::vector<std::thread> readers;
    for (int64_t i = 0; i < n; ++i)
      readers.emplace_back([&, i] {
        TokenEvent e;
        const size_t k = static_cast<size_t>(i);
        while (handles[k]->next(&e)) {
          if (counts[k]++ == 0) first[k] = clock::now();
          last[k] = clock::now();
        }
      });
    for (auto& t : readers) t.join();
    const auto end = clock::now();
    ConcurrencyRow row;
    row.streams = static_cast<int>(n);
    row.prompt_tokens = prompt_tokens;
    row.gen_tokens = gen_tokens;
    int64_t total = 0;
    double ttft_sum = 0, speed_sum = 0;
    for (size_t k = 0; k < static_cast<size_t>(n); ++k) {
      if (handles[k]->finish_reason() == FinishReason::kError) return Status::Error("concurrency bench: " + handles[k]->error());
      total += counts[k];
      const double ttft = std::chrono::duration<double, std::milli>(first[k] - start).count();
      ttft_sum += ttft;
      row.ttft_max_ms = std::max(row.ttft_max_ms, ttft);
      const double decode_s = std::chrono::duration<double>(last[k] - first[k]).count();
      if (counts[k] > 1 && decode_s > 0) speed_sum += static_cast<double>(counts[k] - 1) / decode_s;
    }
    row.agg_tok_s = static_cast<double>(total) / std::chrono::duration<double>(end - start).count();
    row.ttft_mean_ms = ttft_sum / static_cast<double>(n);
    row.stream_tok_s = speed_sum / static_cast<double>(n);
    row.decode_tok_s = speed_sum;
    sink(row);
  }
  return Status::Ok();
}

}  // namespace moepp::server
