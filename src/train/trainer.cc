// Gradient accumulation: each micro-batch's loss is its own mean, scaled by 1/grad_accum, so the
// step's gradient is the mean of the micro-batch gradients.
#include "train/trainer.h"

#include <algorithm>

namespace moepp {

Status TrainerOptions::validate() const {
  MOEPP_RETURN_IF_ERROR(adamw.validate());
  MOEPP_RETURN_IF_ERROR(schedule.validate());
  if (grad_accum < 1) return Status::Error(str_format("train: grad_accum must be >= 1, got %lld", (long long)grad_accum));
  if (!(capacity.factor >= 0))
    return Status::Error(str_format("train: capacity factor must be >= 0 (0 = no limit), got %g", capacity.factor));
  if (!(loss.beta >= 0) || !(loss.tau >= 0))
    return Status::Error(str_format("train: beta %g and tau %g must be non-negative", loss.beta, loss.tau));
  return Status::Ok();
}

CapacityOptions Trainer::capacity() const {
  CapacityOptions c = options_.capacity;
  c.tau = options_.loss.tau;
  return c;
}

Result<Trainer> Trainer::create(TrainParams params, const TrainerOptions& options) {
  MOEPP_RETURN_IF_ERROR(options.validate());
  return Trainer(std::move(params), options);
}

Result<StepReport> Trainer::step(ThreadPool& pool, const std::vector<TrainBatch>& micro) {
  if (static_cast<int64_t>(micro.size()) != options_.grad_accum)
    return Status::Error(str_format("train: %zu micro-batches for a step, expected grad_accum = %lld", micro.size(),
                                    (long long)options_.grad_accum));
  grads_.assign(static_cast<size_t>(params_.size()), 0.0f);
  StepReport r;
  const float scale = 1.0f / static_cast<float>(micro.size());
  for (const TrainBatch& b : micro) {
    MOEPP_ASSIGN_OR_RETURN(LossReport lr, forward_backward(pool, params_, b, options_.loss, grads_.data(), scale,
                                                                 capacity()));
    r.loss += lr.loss * scale;
    r.ce += lr.ce * scale;
    r.balance += lr.balance * scale;
    r.n_tokens += b.n_seqs * b.seq_len;
  }
  r.lr = options_.schedule.lr(adamw_.steps());
  r.grad_norm = adamw_.step(params_, grads_, r.lr);
  r.step = adamw_.steps();
  return r;
}

Result<LossReport> Trainer::evaluate(ThreadPool& pool, const TrainBatch& batch) const {
  return forward_backward(pool, params_, batch, options_.loss, nullptr, 1.0f, capacity());
}

}  // namespace moepp
