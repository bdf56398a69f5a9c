// One optimiser step = forward/backward over grad_accum micro-batches (gradients averaged),
// global-norm clipping, scheduled learning rate, AdamW update.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "platform/thread_pool.h"
#include "train/adamw.h"
#include "train/decoder_grad.h"
#include "train/losses.h"
#include "train/lr_schedule.h"
#include "train/train_params.h"

namespace moepp {

struct TrainerOptions {
  LossOptions loss;
  AdamWOptions adamw;
  LrSchedule schedule;
  CapacityOptions capacity;  // expert capacity (off by default); its tau is loss.tau
  int64_t grad_accum = 1;  // micro-batches per optimiser step
  Status validate() const;
};

struct StepReport {
  int64_t step = 0;  // 1-based count of optimiser steps done
  double loss = 0, ce = 0, balance = 0;  // means over the micro-batches
  double grad_norm = 0;  // before clipping
  double lr = 0;
  int64_t n_tokens = 0;
};

class Trainer {
 public:
  static Result<Trainer> create(TrainParams params, const TrainerOptions& options);

  // micro.size() must equal options.grad_accum.
  Result<StepReport> step(ThreadPool& pool, const std::vector<TrainBatch>& micro);
  // Loss without gradients (validation).
  Result<LossReport> evaluate(ThreadPool& pool, const TrainBatch& batch) const;

  TrainParams& params() { return params_; }
  const TrainParams& params() const { return params_; }
  AdamW& optimizer() { return adamw_; }
  const TrainerOptions& options() const { return options_; }

 private:
  CapacityOptions capacity() const;
  Trainer(TrainParams params, const TrainerOptions& options)
      : params_(std::move(params)), options_(options), adamw_(params_, options.adamw) {}

  TrainParams params_;
  TrainerOptions options_;
  AdamW adamw_;
  std::vector<float> grads_;
};

}  // namespace moepp
