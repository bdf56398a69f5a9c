// Warm-up + cosine learning rate.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace moepp {

double LrSchedule::lr(int64_t step) const {
  if (step < warmup_steps)
    return init_lr + (max_lr - init_lr) * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const int64_t decay = std::max<int64_t>(1, total_steps - warmup_steps);
  const double q = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay));
  return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * q));
}

Status LrSchedule::validate() const {
  if (!(max_lr > 0) || !(min_lr >= 0) || !(init_lr >= 0) || min_lr > max_lr || init_lr > max_lr)
    return Status::Error(str_format("learning rate: expected 0 <= init_lr, min_lr <= max_lr and max_lr > 0, "
                                    "got init %g, min %g, max %g", init_lr, min_lr, max_lr));
  if (warmup_steps < 0 || total_steps < 1)
    return Status::Error(str_format("learning rate: expected warmup >= 0 and total steps >= 1, got %lld and %lld",
                                    (long long)warmup_steps, (long long)total_steps));
  return Status::Ok();
}

}  // namespace moepp
