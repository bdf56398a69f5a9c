// `moepp info -m DIR`: family, shapes, each layer's expert table, parameters, dtypes, memory, from
// the config and the tensors' headers (no weight is read).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "generation_flags.h"
#include "models/model.h"

namespace moepp::cli {
namespace {

struct InfoOptions {
  std::string model_dir;
  ModelFlags model;
  bool json = false;
};

std::string expert_table_string(const MoeLayerSpec& spec) {
  std::string s;
  for (ExpertKind kind : {ExpertKind::kFfn, ExpertKind::kConstant, ExpertKind::kCopy, ExpertKind::kZero}) {
    const int64_t n = spec.count(kind);
    if (n == 0) continue;
    if (!s.empty()) s += " + ";
    s += std::to_string(n) + " " + expert_kind_name(kind);
  }
  return s + ", top-" + std::to_string(spec.router.top_k);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return str_format("%.2f %s", b, units[u]);
}

int run_info(const InfoOptions& o) {
  auto load_options = o.model.load_options();
  if (!load_options.ok()) return fail(load_options.status());
  // Shapes and formats only: instant, and no memory, for a checkpoint of any size.
  load_options->shapes_only = true;
  auto loaded = Model::load(o.model_dir, *load_options);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded.value();
  const ModelConfig& c = model.config();
  const ParamCounts pc = model.param_counts();
  // As make_cache() stores it: f32, bf16 (a bf16 forward) or q8 (--kv-cache q8), scales included.
  const double kv_row_bytes = KvCache(1, 1, c.head_dim, model.kv_storage()).row_bytes();
  const size_t kv_bytes_per_token = static_cast<size_t>(2.0 * static_cast<double>(c.n_layers * c.n_kv_heads) * kv_row_bytes);

  nlohmann::json j;
  j["family"] = family_name(c.family);
  j["model_type"] = c.model_type;
  j["format"] = model.weight_format();
  j["vocab_size"] = c.vocab_size;
  j["d_model"] = c.d_model;
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["n_kv_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rope_theta"] = c.rope_theta;
  j["sliding_window"] = c.sliding_window;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_ids"] = c.eos_token_ids;
  j["params_total"] = pc.total;
  j["params_active_max"] = pc.active_max;
  j["params_active_min"] = pc.active_min;
  nlohmann::json dtypes = nlohmann::json::object();
  for (const auto& [name, n] : model.checkpoint_dtypes()) dtypes[name] = n;
  j["checkpoint_dtypes"] = dtypes;
  j["compute_dtype"] = o.model.dtype;
  const ModelWeights& mw = model.weights();
  const Weight* expert = nullptr;
  for (const ExpertWeights& e : mw.layers[0].moe.experts)
    if (e.gate_up.rows > 0) expert = &e.gate_up;
  const std::string expert_format = expert ? weight_format_name(*expert) : "none";
  const std::string rest_format = weight_format_name(mw.layers[0].attention.q);
  j["expert_weights"] = expert_format;
  j["rest_weights"] = rest_format;
  j["weight_bytes"] = model.weight_bytes();
  j["kv_bytes_per_token"] = kv_bytes_per_token;
  j["kv_cache"] = kv_storage_name(model.kv_storage());
  nlohmann::json layers = nlohmann::json::array();
  for (const MoeLayerSpec& spec : c.layers) {
    nlohmann::json l;
    nlohmann::json experts = nlohmann::json::array();
    for (int64_t e = 0; e < spec.n_experts(); ++e) {
      nlohmann::json ex = {{"kind", expert_kind_name(spec.kinds[e])}};
      if (spec.kinds[e] == ExpertKind::kFfn) ex["d_expert"] = spec.ffn_width[e];
      experts.push_back(ex);
    }
    l["experts"] = experts;
    l["top_k"] = spec.router.top_k;
    l["summary"] = expert_table_string(spec);
    layers.push_back(l);
  }
  j["layers"] = layers;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model      %s\n", o.model_dir.c_str());
  std::printf("family     %s (model_type \"%s\"), weights %s\n", family_name(c.family), c.model_type.c_str(), model.weight_format().c_str());
  std::printf("shape      %lld layers, d_model %lld, %lld heads x %lld (%lld kv heads), vocab %lld\n",
              (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.head_dim,
              (long long)c.n_kv_heads, (long long)c.vocab_size);
  std::printf("rope       theta %g%s\n", c.rope_theta,
              c.sliding_window ? str_format(", sliding window %lld", (long long)c.sliding_window).c_str() : "");
  std::printf("tokens     bos %d, eos", c.bos_token_id);
  for (int32_t e : c.eos_token_ids) std::printf(" %d", e);
  std::printf("\nexperts\n");
  // Consecutive layers with the same table print as one range.
  for (size_t l = 0; l < c.layers.size();) {
    size_t end = l + 1;
    const std::string s = expert_table_string(c.layers[l]);
    while (end < c.layers.size() && expert_table_string(c.layers[end]) == s) ++end;
    std::string widths;
    for (int64_t e = 0; e < c.layers[l].n_experts(); ++e)
      if (c.layers[l].kinds[e] == ExpertKind::kFfn) widths += (widths.empty() ? "" : ",") + std::to_string(c.layers[l].ffn_width[e]);
    std::printf("  layers %zu-%zu: %s (d_expert %s)\n", l, end - 1, s.c_str(), widths.c_str());
    l = end;
  }
  std::printf("params     %lld total; active per token %lld to %lld\n", (long long)pc.total,
              (long long)pc.active_min, (long long)pc.active_max);
  std::printf("dtypes     checkpoint:");
  for (const auto& [name, n] : model.checkpoint_dtypes()) std::printf(" %s x%lld", name.c_str(), (long long)n);
  std::printf("; compute %s; weights: experts %s, attention/lm_head %s\n", o.model.dtype.c_str(),
              expert_format.c_str(), rest_format.c_str());
  std::printf("memory     weights %s + KV cache %s per token (%s)\n", human_bytes(static_cast<double>(model.weight_bytes())).c_str(),
              human_bytes(static_cast<double>(kv_bytes_per_token)).c_str(), kv_storage_name(model.kv_storage()));
  return 0;
}

}  // namespace

Runner add_info_command(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Show a model's family, shapes, expert tables, parameters and memory");
  sub->add_option("-m,--model", o->model_dir, "Model directory (config.json + weights)")->required();
  o->model.add_to(sub);
  sub->add_flag("--json", o->json, "Print one JSON object instead of text");
  return [o] { return run_info(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(10, add_info_command);
}  // namespace moepp::cli
