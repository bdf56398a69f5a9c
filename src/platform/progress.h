// A one-line progress bar on stderr for long work (evaluations, loading); silent unless stderr is
// a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moepp {

class Progress {
 public:
  // unit: printed after the counts ("123/456 MB"). quiet_for: nothing is drawn before this much
  // time has passed, so work that ends sooner (a small model's load) prints nothing.
  Progress(std::string label, int64_t total, std::string unit = "",
           std::chrono::milliseconds quiet_for = std::chrono::milliseconds(0));
  ~Progress();  // without finish() (an error): the line ends where the bar stopped
  void update(int64_t done);  // redraws at most ~10 times a second
  void finish();              // the bar at its total, and a new line
  // Ends a bar's line left open (an error message goes on a line of its own).
  static void end_open_line();

 private:
  void draw(int64_t done);

  std::string label_;
  int64_t total_;
  std::string unit_;
  std::chrono::milliseconds quiet_for_;
  bool enabled_;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace moepp
