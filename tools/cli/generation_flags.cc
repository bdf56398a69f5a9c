// Generation flags -> GenerateOptions.
#include "generation_flags.h"

#include "platform/thread_pool.h"

namespace moepp::cli {

void GenerationFlags::add_to(CLI::App* sub) {
  sub->add_option("-n,--n-predict", n_predict, "Maximum tokens to generate")->capture_default_str();
  sub->add_option("--temp,--temperature", temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", top_k, "Keep the k most likely tokens; 0 = all")->capture_default_str();
  sub->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  sub->add_option("-s,--seed", seed, "Random seed for sampling")->capture_default_str();
  sub->add_option("--dtype", dtype, "Compute precision: f32 or bf16")->capture_default_str();
  sub->add_option("-t,--threads", threads, "Threads (default: physical cores)");
}

Result<GenerateOptions> GenerationFlags::options() const {
  if (n_predict < 0) return Status::Error("-n: expected a number of tokens >= 0, got " + std::to_string(n_predict));
  GenerateOptions g;
  g.max_new_tokens = n_predict;
  g.sampling = {temperature, top_k, top_p, seed};
  MOEPP_RETURN_IF_ERROR(g.sampling.validate());
  return g;
}

int GenerationFlags::thread_count() const { return threads > 0 ? threads : ThreadPool::default_threads(); }

}  // namespace moepp::cli
