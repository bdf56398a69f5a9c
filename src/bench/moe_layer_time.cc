#include "bench/moe_layer_time.h"

#include <algorithm>
#include <chrono>

#include "moe/moe_layer.h"

namespace moepp {
namespace {

// Copies every MoE layer's input and gating-residual input out of one forward pass.
struct MoeInputRecorder : ForwardObserver {
  explicit MoeInputRecorder(const ModelConfig& config)
      : c(config), x(static_cast<size_t>(config.n_layers)), prev(x.size()), plans(x.size()) {}
  void on_moe_input(int64_t layer, const Batch& batch, const float* in, const float* prev_logits) override {
    x[layer].assign(in, in + batch.size() * c.d_model);
    if (prev_logits != nullptr) prev[layer].assign(prev_logits, prev_logits + batch.size() * c.layers[layer].n_experts());
  }
  void on_routing(int64_t layer, const Batch&, const RoutingPlan& plan) override { plans[layer] = plan; }

  const ModelConfig& c;
  std::vector<std::vector<float>> x, prev;  // [layer][n_tokens * d], [layer][n_tokens * n_experts] or empty
  std::vector<RoutingPlan> plans;           // [layer]
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

Result<MoeLayerTiming> time_moe_layers(const Model& model, const std::string& label, const std::vector<int32_t>& ids,
                                       int threads, int repetitions) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 1) return Status::Error("moe layer timing: no tokens");
  if (c.max_position_embeddings > 0 && n > c.max_position_embeddings)
    return Status::Error(str_format("moe layer timing: %lld tokens, more than the model's %lld positions", (long long)n,
                                    (long long)c.max_position_embeddings));
  ThreadPool pool(threads);
  MoeInputRecorder rec(c);
  KvCache cache = model.make_cache();
  const int32_t seq = cache.add_sequence();
  Batch batch;
  for (int64_t i = 0; i < n; ++i) batch.add(ids[i], static_cast<int32_t>(i), seq, i + 1 == n);
  std::vector<float> logits;
  MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits, &rec));

  MoeLayerTiming out;
  out.model = label;
  out.threads = threads;
  out.n_tokens = n;
  out.n_layers = c.n_layers;
  int64_t slots = 0, zc = 0, ffn = 0;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (int32_t e : rec.plans[l].experts) {
      ++slots;
      if (c.layers[l].kinds[e] == ExpertKind::kFfn) ++ffn;
      else ++zc;
    }
  out.zc_share = slots > 0 ? static_cast<double>(zc) / slots : 0;
  out.ffn_slots_per_token = static_cast<double>(ffn) / static_cast<double>(n * c.n_layers);

  const int64_t d = c.d_model;
  const Precision p = model.precision();
  // All MoE layers on their recorded inputs, `per_call` tokens per moe_forward call.
  auto run_all = [&](int64_t per_call) {
    std::vector<float> y(static_cast<size_t>(per_call * d)), x(static_cast<size_t>(per_call * d));
    RoutingPlan plan;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const MoeLayerSpec& spec = c.layers[l];
      std::vector<float> raw(static_cast<size_t>(per_call * spec.n_experts()));
      for (int64_t start = 0; start < n; start += per_call) {
        const int64_t m = std::min(per_call, n - start);
        // moe_forward may scale its input in place: a fresh copy every call.
        std::copy(rec.x[l].begin() + start * d, rec.x[l].begin() + (start + m) * d, x.begin());
        const float* prev = rec.prev[l].empty() ? nullptr : rec.prev[l].data() + start * spec.n_experts();
        moe_forward(pool, spec, model.weights().layers[l].moe, x.data(), m, d, prev, raw.data(), &plan, y.data(), p);
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> pp, tg;
  for (int r = 0; r < std::max(1, repetitions); ++r) {
    pp.push_back(static_cast<double>(n) / run_all(n));
    tg.push_back(static_cast<double>(n) / run_all(1));
  }
  out.pp_tok_s = median(pp);
  out.tg_tok_s = median(tg);
  return out;
}

}  // namespace moepp
