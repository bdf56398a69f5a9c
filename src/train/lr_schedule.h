// Learning-rate schedule: linear warm-up from init_lr to max_lr, then cosine decay to min_lr
// (the paper's Appendix B shape: warm-up init LR / iters, max LR, final LR).
#pragma once

#include <cstdint>

#include "base/status.h"

namespace moepp {

struct LrSchedule {
  double max_lr = 5e-4;
  double min_lr = 5e-5;
  double init_lr = 1e-7;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Step s (0-based): s < warmup: init + (max - init) (s + 1) / warmup; then
  // min + (max - min) (1 + cos(pi q)) / 2 with q = (s - warmup) / (total - warmup), clamped to 1.
  double lr(int64_t step) const;
  Status validate() const;
};

}  // namespace moepp
