// AdamW (Loshchilov & Hutter, as torch.optim.AdamW): decoupled weight decay applied only to
// tensors marked `decay` in TrainParams (2-D matrices except the embedding; no decay on norms,
// constant-expert vectors or the embedding), and global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "train/train_params.h"

namespace moepp {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // paper Appendix B
  double clip_norm = 1.0;     // global L2 norm; <= 0 disables clipping
  Status validate() const;
};

class AdamW {
 public:
  AdamW(const TrainParams& params, const AdamWOptions& options);

  // Clips grads in place to the global norm, then one update at learning rate lr. Returns the
  // gradient norm before clipping.
  double step(TrainParams& params, std::vector<float>& grads, double lr);

  int64_t steps() const { return step_; }
  // Optimiser state for checkpoints: first and second moments, [params.size()] each.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_steps(int64_t s) { step_ = s; }

 private:
  AdamWOptions o_;
  std::vector<uint8_t> decay_;  // [params.size()]
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

// sqrt(sum g^2) accumulated in double.
double global_norm(const std::vector<float>& grads);

}  // namespace moepp
