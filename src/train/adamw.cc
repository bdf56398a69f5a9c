// torch.optim.AdamW update order: p *= 1 - lr wd; m, v moments; p -= lr m_hat / (sqrt(v_hat) + eps)
// with bias corrections 1 - beta^t. Clipping as torch.nn.utils.clip_grad_norm_:
// g *= clip / (norm + 1e-6) when norm > clip.
#include "train/adamw.h"

#include <cmath>

namespace moepp {

Status AdamWOptions::validate() const {
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    return Status::Error(str_format("adamw: betas must be in [0, 1), got %g, %g", beta1, beta2));
  if (!(eps > 0)) return Status::Error(str_format("adamw: eps must be positive, got %g", eps));
  if (!(weight_decay >= 0)) return Status::Error(str_format("adamw: weight decay must be >= 0, got %g", weight_decay));
  if (std::isnan(clip_norm)) return Status::Error("adamw: clip norm is NaN");
  return Status::Ok();
}

AdamW::AdamW(const TrainParams& params, const AdamWOptions& options) : o_(options) {
  decay_.assign(static_cast<size_t>(params.size()), 0);
  for (const ParamTensor& t : params.tensors())
    if (t.decay) std::fill(decay_.begin() + t.ref.offset, decay_.begin() + t.ref.offset + t.ref.size(), 1);
  m_.assign(decay_.size(), 0.0f);
  v_.assign(decay_.size(), 0.0f);
}

double global_norm(const std::vector<float>& grads) {
  double ss = 0;
  for (float g : grads) ss += static_cast<double>(g) * g;
  return std::sqrt(ss);
}

double AdamW::step(TrainParams& params, std::vector<float>& grads, double lr) {
  const double norm = global_norm(grads);
  if (o_.clip_norm > 0 && norm > o_.clip_norm) {
    const float f = static_cast<float>(o_.clip_norm / (norm + 1e-6));
    for (float& g : grads) g *= f;
  }
  ++step_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(step_));
  const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - lr * o_.weight_decay);
  const float eps = static_cast<float>(o_.eps);
  float* p = params.values().data();
  for (size_t i = 0; i < grads.size(); ++i) {
    if (decay_[i]) p[i] *= decay;
    const float g = grads[i];
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    p[i] -= step_size * m_[i] / (std::sqrt(v_[i]) * inv_sqrt_bc2 + eps);
  }
  return norm;
}

}  // namespace moepp
