// Whole-decoder training pass: forward with saved activations, losses, hand-written backward
// into a flat gradient buffer laid out like TrainParams. (No C++ autograd library is packaged
// in Debian that would be worth the dependency; the backward of each part is written out and
// checked against PyTorch autograd in tests/train.)
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "platform/thread_pool.h"
#include "train/losses.h"
#include "train/train_params.h"

namespace moepp {

// n_seqs sequences of seq_len tokens; targets[t] is the token position t must predict
// (the next token for language modelling), or kIgnoreLabel.
struct TrainBatch {
  int64_t n_seqs = 0, seq_len = 0;
  std::vector<int32_t> tokens;   // [n_seqs, seq_len]
  std::vector<int32_t> targets;  // [n_seqs, seq_len]
};

struct LossReport {
  double loss = 0;     // ce + beta * balance
  double ce = 0;       // mean cross-entropy over counted targets
  double balance = 0;  // layers' L_b summed or averaged (before beta)
  std::vector<double> balance_per_layer;           // [n_layers]
  std::vector<std::vector<int64_t>> expert_counts;  // [n_layers][n_experts] selected slots
  std::vector<int64_t> dropped;                     // [n_layers] slots dropped by capacity
  int64_t n_targets = 0;
};

// Checks token ids, targets and shapes against the model (bad data gives a clear error).
Status check_train_batch(const ModelConfig& config, const TrainBatch& batch);

// Runs the batch; with grads non-null also the backward, accumulating
// grad_scale * dLoss/dparams into grads [params.size()] (grad_scale = 1/n_micro for
// gradient accumulation).
Result<LossReport> forward_backward(ThreadPool& pool, const TrainParams& params, const TrainBatch& batch,
                                    const LossOptions& options, float* grads, float grad_scale = 1.0f,
                                    const CapacityOptions& capacity = {});

}  // namespace moepp
