// Zero-computation share biasing (see zc_bias.h).
#include "bench/zc_bias.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "moe/routing.h"

namespace moepp {
namespace {

// Bisection runs on u with b = sinh(u): fine steps near 0 and |b| up to ~8e4, since deep
// layers of a random model can see the constant feature scaled down by a large residual norm.
constexpr double kUnitLimit = 12.0;
constexpr int kBisectionSteps = 30;
float bias_of(double u) { return static_cast<float>(std::sinh(u)); }

Status check_writable(const Weight& w, const char* what) {
  if (w.empty() || w.owner == nullptr)
    return Status::Error(std::string("--zc-share: ") + what + " is not owned memory (use --model-shape, not -m)");
  if (w.quant != WeightQuant::kNone || (w.dtype != DType::kF32 && w.dtype != DType::kBF16))
    return Status::Error(std::string("--zc-share: ") + what + ": expected f32 or bf16 weights");
  return Status::Ok();
}

void put(Weight& w, int64_t r, int64_t c, float v) {
  void* data = const_cast<void*>(w.data);
  const int64_t i = r * w.cols + c;
  if (w.dtype == DType::kF32) static_cast<float*>(data)[i] = v;
  else static_cast<uint16_t*>(data)[i] = f32_to_bf16(v);
}

bool is_zc(ExpertKind k) { return k != ExpertKind::kFfn; }

double plan_zc_share(const MoeLayerSpec& spec, const RoutingPlan& plan) {
  int64_t zc = 0;
  for (int32_t e : plan.experts) zc += is_zc(spec.kinds[static_cast<size_t>(e)]) ? 1 : 0;
  return plan.experts.empty() ? 0.0 : static_cast<double>(zc) / static_cast<double>(plan.experts.size());
}

Status check_spec(const MoeLayerSpec& spec, double share) {
  if (!(share >= 0.0 && share <= 1.0)) return Status::Error(str_format("--zc-share: expected a share in [0, 1], got %g", share));
  if (spec.router.network != RouterNetwork::kLinear)
    return Status::Error("--zc-share: needs a Linear router (the MLP router has no column to bias)");
  if (spec.count(ExpertKind::kFfn) == spec.n_experts())
    return Status::Error("--zc-share: the model has no zero-computation experts (use an MoE++ shape)");
  return Status::Ok();
}

// Routes every layer's share on the calibration batch.
class ShareObserver : public ForwardObserver {
 public:
  explicit ShareObserver(const ModelConfig& c) : config_(c), share_(static_cast<size_t>(c.n_layers), 0.0) {}
  void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) override {
    share_[static_cast<size_t>(layer)] = plan_zc_share(config_.layers[static_cast<size_t>(layer)], plan);
  }
  const std::vector<double>& share() const { return share_; }

 private:
  const ModelConfig& config_;
  std::vector<double> share_;
};

}  // namespace

std::vector<float> normed_hidden_states(int64_t n, int64_t d, uint64_t seed, Precision prec) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (float& v : x) v = prec.round(dist(rng));
  for (int64_t t = 0; t < n; ++t) x[static_cast<size_t>(t * d + kBiasFeature)] = 1.0f;
  return x;
}

Status set_router_bias(const MoeLayerSpec& spec, MoeLayerWeights* w, float bias) {
  MOEPP_RETURN_IF_ERROR(check_writable(w->router.w1, "router weight"));
  for (int64_t e = 0; e < spec.n_experts(); ++e) put(w->router.w1, e, kBiasFeature, is_zc(spec.kinds[e]) ? bias : 0.0f);
  return Status::Ok();
}

Result<ZcCalibration> calibrate_layer_bias(ThreadPool& pool, const MoeLayerSpec& spec, MoeLayerWeights* w,
                                           const float* x, int64_t n_tokens, int64_t d_model, double share) {
  MOEPP_RETURN_IF_ERROR(check_spec(spec, share));
  std::vector<float> logits(static_cast<size_t>(n_tokens * spec.n_experts()));
  RoutingPlan plan;
  auto measure = [&](float bias) -> Result<double> {
    MOEPP_RETURN_IF_ERROR(set_router_bias(spec, w, bias));
    route(pool, spec, w->router, x, n_tokens, nullptr, logits.data(), &plan, Precision{ComputeDType::kF32});
    return plan_zc_share(spec, plan);
  };
  double lo = -kUnitLimit, hi = kUnitLimit;
  for (int i = 0; i < kBisectionSteps; ++i) {
    const double mid = 0.5 * (lo + hi);
    MOEPP_ASSIGN_OR_RETURN(double s, measure(bias_of(mid)));
    if (s < share) lo = mid;
    else hi = mid;
  }
  ZcCalibration cal;
  cal.bias = {bias_of(0.5 * (lo + hi))};
  MOEPP_ASSIGN_OR_RETURN(cal.share, measure(cal.bias[0]));
  return cal;
}

Status prepare_model_for_zc_bias(Model* model) {
  const ModelConfig& c = model->config();
  ModelWeights& w = model->mutable_weights();
  MOEPP_RETURN_IF_ERROR(check_writable(w.embed, "embedding"));
  for (int64_t t = 0; t < w.embed.rows; ++t) put(w.embed, t, kBiasFeature, 1.0f);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const MoeLayerSpec& spec = c.layers[static_cast<size_t>(l)];
    LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    MOEPP_RETURN_IF_ERROR(check_writable(lw.input_norm, "input norm"));
    put(lw.input_norm, 0, kBiasFeature, 0.0f);
    MOEPP_RETURN_IF_ERROR(set_router_bias(spec, &lw.moe, 0.0f));
    if (!lw.moe.router.gate_map.empty()) {
      MOEPP_RETURN_IF_ERROR(check_writable(lw.moe.router.gate_map, "gate_map"));
      for (int64_t e = 0; e < spec.n_experts(); ++e)
        if (is_zc(spec.kinds[e]))
          for (int64_t r = 0; r < spec.n_experts(); ++r) put(lw.moe.router.gate_map, r, e, 0.0f);
    }
  }
  return Status::Ok();
}

Result<ZcCalibration> calibrate_model_bias(ThreadPool& pool, Model* model, double share,
                                           const std::vector<int32_t>& tokens) {
  const ModelConfig& c = model->config();
  for (const MoeLayerSpec& spec : c.layers) MOEPP_RETURN_IF_ERROR(check_spec(spec, share));
  MOEPP_RETURN_IF_ERROR(prepare_model_for_zc_bias(model));
  if (tokens.empty()) return Status::Error("--zc-share: no calibration tokens");
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  Batch batch;
  for (int64_t t = 0; t < n_tokens; ++t) batch.add(tokens[t], static_cast<int32_t>(t), 0, t + 1 == n_tokens);
  const size_t n_layers = static_cast<size_t>(c.n_layers);
  std::vector<double> u(n_layers, 0.0), lo(n_layers), hi(n_layers);
  std::vector<float> bias(n_layers, 0.0f);
  ShareObserver observer(c);
  std::vector<float> logits;
  auto run = [&]() -> Status {
    for (size_t l = 0; l < n_layers; ++l) {
      bias[l] = bias_of(u[l]);
      MOEPP_RETURN_IF_ERROR(set_router_bias(c.layers[l], &model->mutable_weights().layers[l].moe, bias[l]));
    }
    KvCache cache = model->make_cache();
    cache.add_sequence();
    return model->forward(pool, batch, cache, &logits, &observer);
  };
  // Layers bisect in parallel: a layer's routing depends on earlier layers only mildly (through
  // the residual stream), so one forward per step serves every layer. Stops once every layer is
  // within 0.02 of the target (or one slot, for short batches). Because earlier layers move
  // while a layer bisects, a layer can end outside its bracket; later rounds re-open a narrower
  // bracket around where each layer stopped.
  const double slots = static_cast<double>(n_tokens * c.layers[0].router.top_k);
  const double tolerance = std::max(0.02, 1.0 / slots);
  bool done = false;
  for (int round = 0; round < 3 && !done; ++round) {
    const double width = round == 0 ? kUnitLimit : 1.0;
    for (size_t l = 0; l < n_layers; ++l) {
      lo[l] = u[l] - width;
      hi[l] = u[l] + width;
    }
    for (int step = 0; step < kBisectionSteps && !done; ++step) {
      for (size_t l = 0; l < n_layers; ++l) u[l] = 0.5 * (lo[l] + hi[l]);
      MOEPP_RETURN_IF_ERROR(run());
      done = true;
      for (size_t l = 0; l < n_layers; ++l) {
        const double s = observer.share()[l];
        if (std::fabs(s - share) > tolerance) done = false;
        if (s < share) lo[l] = u[l];
        else hi[l] = u[l];
      }
    }
  }
  ZcCalibration cal;
  cal.bias = bias;
  for (double s : observer.share()) cal.share += s / static_cast<double>(n_layers);
  return cal;
}

}  // namespace moepp
