// Shared CLI helpers.
#include "cli_common.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "platform/progress.h"
#include "platform/thread_pool.h"

namespace moepp::cli {

Result<std::vector<int32_t>> parse_ids(const std::string& text, const char* flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
      return Status::Error(std::string(flag) + ": expected comma-separated non-negative token ids, got '" + item + "'");
    ids.push_back(static_cast<int32_t>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

Result<ComputeDType> parse_dtype(const std::string& text) {
  if (text == "f32" || text == "float32" || text == "fp32") return ComputeDType::kF32;
  if (text == "bf16" || text == "bfloat16") return ComputeDType::kBF16;
  return Status::Error("--dtype: expected f32 or bf16, got '" + text + "'");
}

void add_threads_option(CLI::App* sub, int* threads, const std::string& help) {
  sub->add_option("-t,--threads", *threads, help)->check(CLI::Range(0, kMaxThreads));
}

int thread_count(int threads) { return threads > 0 ? threads : ThreadPool::default_threads(); }

std::function<void(int64_t, int64_t)> progress_bar(const std::string& label) {
  auto bar = std::make_shared<std::unique_ptr<Progress>>();  // made at the first call, when the total is known
  return [bar, label](int64_t done, int64_t total) {
    if (*bar == nullptr) *bar = std::make_unique<Progress>(label, total / 1000000, "MB", std::chrono::seconds(1));
    (*bar)->update(done / 1000000);
    if (done >= total) {
      (*bar)->finish();
      bar->reset();  // a second load (a draft model) gets a bar of its own
    }
  };
}

int fail(const Status& status) {
  Progress::end_open_line();
  std::fprintf(stderr, "moepp: %s\n", status.message().c_str());
  return 1;
}

}  // namespace moepp::cli
