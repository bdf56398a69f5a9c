// Progress bar: "label [#####.....] 123/456 12.3 s" redrawn in place with \r.
#include "platform/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace moepp {

Progress::Progress(std::string label, int64_t total, std::string unit, std::chrono::milliseconds quiet_for)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)), quiet_for_(quiet_for),
      enabled_(isatty(2) == 1 && total > 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

namespace {
std::atomic<bool> g_line_open{false};  // a bar drawn without its new line yet (one terminal: stderr)
}  // namespace

Progress::~Progress() {
  if (!finished_) end_open_line();
}

void Progress::end_open_line() {
  if (g_line_open.exchange(false)) std::fprintf(stderr, "\n");
}

void Progress::update(int64_t done) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - start_ < quiet_for_) return;
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done);
}

void Progress::draw(int64_t done) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total_);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "\r%s [%s] %lld/%lld%s%s %.1f s", label_.c_str(), bar, static_cast<long long>(done),
               static_cast<long long>(total_), unit_.empty() ? "" : " ", unit_.c_str(), secs);
  std::fflush(stderr);
  drawn_ = true;
  g_line_open = true;
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (!drawn_ && std::chrono::steady_clock::now() - start_ < quiet_for_) return;  // done before it was due
  draw(total_);
  end_open_line();
}

}  // namespace moepp
