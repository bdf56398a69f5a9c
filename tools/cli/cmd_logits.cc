// `moepp logits -m DIR --ids 1,2,3 -o FILE`: logits of every position as little-endian f32
// [n_tokens, vocab_size]; --routes FILE writes the experts chosen per layer and token.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "models/model.h"
#include "platform/durable_file.h"

namespace moepp::cli {
namespace {

struct LogitsOptions {
  std::string model_dir, ids, output, routes, dump_dir;
  ModelFlags model;
  int64_t chunk = 0;
  int threads = 0;
};

// Collects routing plans and per-layer outputs across chunks.
class Recorder : public ForwardObserver {
 public:
  Recorder(int64_t n_layers, int64_t d_model) : experts_(n_layers), weights_(n_layers), hidden_(n_layers), d_(d_model) {}
  void on_routing(int64_t layer, const Batch& batch, const RoutingPlan& plan) override {
    for (int64_t t = 0; t < plan.n_tokens; ++t) {
      std::vector<int32_t> e(plan.experts.begin() + t * plan.top_k, plan.experts.begin() + (t + 1) * plan.top_k);
      std::vector<float> w(plan.weights.begin() + t * plan.top_k, plan.weights.begin() + (t + 1) * plan.top_k);
      experts_[layer].push_back(e);
      weights_[layer].push_back(w);
    }
  }
  void on_layer_output(int64_t layer, const Batch& batch, const float* h) override {
    hidden_[layer].insert(hidden_[layer].end(), h, h + batch.size() * d_);
  }
  std::vector<std::vector<std::vector<int32_t>>> experts_;  // [layer][token][k]
  std::vector<std::vector<std::vector<float>>> weights_;
  std::vector<std::vector<float>> hidden_;                  // [layer][n_tokens * d_model]
  int64_t d_;
};

int run_logits(const LogitsOptions& o) {
  auto ids = parse_ids(o.ids, "--ids");
  if (!ids.ok()) return fail(ids.status());
  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  if (o.chunk < 0) return fail(Status::Error("--chunk: expected a positive number of tokens, got " + std::to_string(o.chunk)));
  ThreadPool pool(thread_count(o.threads));  // also converts and quantises the weights while loading
  load_options->pool = &pool;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();

  KvCache cache = model.make_cache();
  const int32_t seq = cache.add_sequence();
  Recorder recorder(model.config().n_layers, model.config().d_model);
  const int64_t n = static_cast<int64_t>(ids->size());
  const int64_t chunk = o.chunk > 0 ? o.chunk : n;
  std::vector<float> all_logits, logits;
  for (int64_t start = 0; start < n; start += chunk) {
    Batch batch;
    for (int64_t i = start; i < std::min(n, start + chunk); ++i) batch.add((*ids)[i], static_cast<int32_t>(i), seq, true);
    Status s = model.forward(pool, batch, cache, &logits, &recorder);
    if (!s.ok()) return fail(s.with_context("--ids"));
    all_logits.insert(all_logits.end(), logits.begin(), logits.end());
  }
  Status s = write_file_replacing(o.output, all_logits.data(), all_logits.size() * sizeof(float));
  if (!s.ok()) return fail(s);
  if (!o.routes.empty()) {
    nlohmann::json j;
    j["layers"] = recorder.experts_;
    j["weights"] = recorder.weights_;
    const std::string text = j.dump() + "\n";
    s = write_file_replacing(o.routes, text.data(), text.size());
    if (!s.ok()) return fail(s);
  }
  if (!o.dump_dir.empty()) {
    for (size_t l = 0; l < recorder.hidden_.size(); ++l) {
      const auto& h = recorder.hidden_[l];
      s = write_file_replacing(o.dump_dir + str_format("/layer_%02zu.f32", l), h.data(), h.size() * sizeof(float));
      if (!s.ok()) return fail(s);
    }
  }
  return 0;
}

}  // namespace

Runner add_logits_command(CLI::App& app) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* sub = app.add_subcommand("logits", "Write the logits of every position (little-endian f32 [n_tokens, vocab_size])");
  sub->add_option("-m,--model", o->model_dir, "Model directory")->required();
  sub->add_option("--ids", o->ids, "Comma-separated input token ids, e.g. 1,15043,3186")->required();
  sub->add_option("-o,--output", o->output, "Output file for the logits")->required();
  sub->add_option("--routes", o->routes, "Also write the chosen experts per layer and token as JSON {\"layers\": [[[e1, e2], ...], ...], \"weights\": ...}");
  o->model.add_to(sub);
  sub->add_option("--chunk", o->chunk, "Feed the tokens through the KV cache this many at a time (1 = token by token; default: all at once)");
  sub->add_option("--dump-dir", o->dump_dir, "Write each layer's output hidden states as layer_NN.f32 [n_tokens, d_model] into this existing directory");
  add_threads_option(sub, &o->threads);
  return [o] { return run_logits(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(20, add_logits_command);
}  // namespace moepp::cli
