// Model loading (config -> family -> weights) and the decoder forward pass shared by all
// families: h += Attn(RMSNorm(h)); h += MoE(RMSNorm(h)); logits = lm_head(RMSNorm(h)).
#include "models/model.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "layers/attention.h"
#include "models/family.h"
#include "moe/moe_layer.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "tensor/quantize.h"
#include "tensor/random_fill.h"

namespace moepp {
namespace {

// Quantised (q != kNone) and row-interleaved copy of *w in place of the original. A view into
// the mapped checkpoint gives its pages back, so the copy does not add to the memory (the file
// stays mapped for the small tensors still viewed there). Nothing to do when *w is prepared
// already (an expert done as it was loaded). options.shapes_only: the format alone, as the copy
// would have it.
Status prepare_matrix(Weight* w, WeightQuant q, const std::string& what, const LoadOptions& options) {
  if (w->rows == 0 || (w->interleaved && w->quant == q)) return Status::Ok();
  // Stored quantised by `moepp quantize`: kept as stored when asked for the same format (or
  // none); another format would quantise the quantised values again.
  if (w->quant != WeightQuant::kNone) {
    if (q != WeightQuant::kNone && q != w->quant)
      return Status::Error(what + ": stored as " + quant_name(w->quant) + " in the checkpoint, cannot be requantised to " +
                           quant_name(q) + " (quantise the float checkpoint instead)");
    q = WeightQuant::kNone;
  }
  if (options.shapes_only) {
    if (q != WeightQuant::kNone) {
      w->quant = q;
      w->dtype = DType::kF32;
    }
    w->interleaved = true;
    return Status::Ok();
  }
  ThreadPool* pool = options.pool;
  Weight out = *w;
  if (q != WeightQuant::kNone) {
    auto quantized = quantize_interleaved(*w, q, pool);  // straight into the kernels' layout
    if (!quantized.ok()) return quantized.status().with_context(what);
    out = std::move(quantized).value();
  }
  if (!out.interleaved) out = interleave_rows(out, pool);
  if (out.data == w->data) return Status::Ok();
  if (w->owner == nullptr && w->quant == WeightQuant::kNone) {
    const size_t bytes = static_cast<size_t>(w->rows * w->cols) * dtype_size(w->dtype);
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(w->data) + 4095) & ~uintptr_t{4095};
    const uintptr_t end = (reinterpret_cast<uintptr_t>(w->data) + bytes) & ~uintptr_t{4095};
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  *w = std::move(out);
  return Status::Ok();
}


Result<nlohmann::json> read_json_file(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (required) return Status::Error(path + ": cannot open (is this a model directory?)");
    return nlohmann::json();  // null: absent optional file
  }
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(path + ": not valid JSON");
  if (!j.is_object()) return Status::Error(path + ": expected a JSON object at the top level, got " + std::string(j.type_name()));
  return j;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_content(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// inv_freq[j] = 1 / theta^(2j / head_dim), in f32 as HF computes it.
std::vector<float> rope_inv_freq(const ModelConfig& c) {
  std::vector<float> inv_freq;
  for (int64_t j = 0; j < c.head_dim / 2; ++j)
    inv_freq.push_back(1.0f / std::pow(static_cast<float>(c.rope_theta),
                                       static_cast<float>(2 * j) / static_cast<float>(c.head_dim)));
  return inv_freq;
}

}  // namespace

Status resolve_special_tokens(const std::string& dir, ModelConfig* config) {
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json tok_config, read_json_file(dir + "/tokenizer_config.json", false));
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json special_map, read_json_file(dir + "/special_tokens_map.json", false));
  std::map<std::string, int32_t> id_of;  // token text -> id, from added_tokens_decoder
  if (tok_config.is_object() && tok_config.contains("added_tokens_decoder")) {
    const auto& decoder = tok_config["added_tokens_decoder"];
    if (!decoder.is_object()) return Status::Error(dir + "/tokenizer_config.json: field 'added_tokens_decoder': expected an object");
    for (const auto& [key, value] : decoder.items()) {
      char* end = nullptr;
      const long id = std::strtol(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || id < 0 || id >= config->vocab_size)
        return Status::Error(dir + "/tokenizer_config.json: field 'added_tokens_decoder': expected token ids in [0, " +
                             std::to_string(config->vocab_size) + "), got \"" + key + "\"");
      const std::string content = token_content(value);
      if (!content.empty()) id_of[content] = static_cast<int32_t>(id);
    }
  }
  auto lookup = [&](const char* field) -> int32_t {
    std::string content;
    if (tok_config.is_object() && tok_config.contains(field)) content = token_content(tok_config[field]);
    if (content.empty() && special_map.is_object() && special_map.contains(field)) content = token_content(special_map[field]);
    auto it = id_of.find(content);
    return it == id_of.end() ? -1 : it->second;
  };
  const int32_t bos = lookup("bos_token");
  if (bos >= 0) config->bos_token_id = bos;
  const int32_t eos = lookup("eos_token");
  if (eos >= 0 && std::find(config->eos_token_ids.begin(), config->eos_token_ids.end(), eos) == config->eos_token_ids.end())
    config->eos_token_ids.insert(config->eos_token_ids.begin(), eos);
  return Status::Ok();
}

Status Model::set_precision(const LoadOptions& options) {
  precision_.dtype = options.dtype;
  kv_storage_ = options.kv_cache.value_or(precision_.bf16() ? KvStorage::kBF16 : KvStorage::kF32);
  // A bf16 cache would round an f32 forward's keys and values (f32 storage holds either exactly).
  if (kv_storage_ == KvStorage::kBF16 && !precision_.bf16())
    return Status::Error("--kv-cache bf16: expected --dtype bf16 (an f32 forward's keys and values are not bf16 values)");
  return Status::Ok();
}

Result<std::unique_ptr<Model>> Model::load(const std::string& dir, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  MOEPP_RETURN_IF_ERROR(m->set_precision(options));
  const std::string config_path = dir + "/config.json";
  MOEPP_ASSIGN_OR_RETURN(nlohmann::json json, read_json_file(config_path, true));
  ConfigReader reader(json, config_path);
  MOEPP_ASSIGN_OR_RETURN(std::string model_type, reader.string_or("model_type", ""));
  const FamilyDef* family = find_family(model_type);
  if (family == nullptr) return reader.error("model_type", "one of " + supported_model_types());
  ModelConfig& c = m->config_;
  c.family = family->family;
  c.model_type = model_type;
  MOEPP_RETURN_IF_ERROR(parse_decoder_fields(reader, &c));
  MOEPP_RETURN_IF_ERROR(family->parse_config(reader, &c));
  MOEPP_RETURN_IF_ERROR(resolve_special_tokens(dir, &c));

  MOEPP_ASSIGN_OR_RETURN(TensorSource source, open_checkpoint(dir));
  m->source_ = std::make_unique<TensorSource>(std::move(source));
  m->weight_format_ = m->source_->format();
  std::map<std::string, int64_t> dtype_counts;
  int64_t total_bytes = 0;
  for (const TensorEntry& e : m->source_->entries()) {
    ++dtype_counts[dtype_name(e.dtype)];
    total_bytes += static_cast<int64_t>(e.nbytes);
  }
  m->checkpoint_dtypes_.assign(dtype_counts.begin(), dtype_counts.end());

  WeightLoader loader(*m->source_, m->precision_.weight_dtype(), dir, options.pool);
  auto report_progress = [&] {
    if (options.progress) options.progress(loader.bytes_used(), total_bytes);
  };
  report_progress();  // 0 bytes: a progress bar's clock starts here
  loader.stage_experts_for_quantization(options.expert_quant != WeightQuant::kNone);
  loader.set_shapes_only(options.shapes_only);
  m->has_weight_values_ = !options.shapes_only;
  family->declare_ignored(loader);
  ModelWeights& w = m->weights_;
  const int64_t d = c.d_model;
  MOEPP_ASSIGN_OR_RETURN(w.embed, loader.matrix("model.embed_tokens.weight", c.vocab_size, d));
  report_progress();
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& lw = w.layers[l];
    MOEPP_ASSIGN_OR_RETURN(lw.input_norm, loader.vector(p + "input_layernorm.weight", d));
    MOEPP_ASSIGN_OR_RETURN(lw.post_norm, loader.vector(p + "post_attention_layernorm.weight", d));
    const int64_t q_width = c.n_heads * c.head_dim;
    const int64_t kv_width = c.n_kv_heads * c.head_dim;
    MOEPP_ASSIGN_OR_RETURN(lw.attention.q, loader.matrix(p + "self_attn.q_proj.weight", q_width, d));
    MOEPP_ASSIGN_OR_RETURN(lw.attention.k, loader.matrix(p + "self_attn.k_proj.weight", kv_width, d));
    MOEPP_ASSIGN_OR_RETURN(lw.attention.v, loader.matrix(p + "self_attn.v_proj.weight", kv_width, d));
    MOEPP_ASSIGN_OR_RETURN(lw.attention.o, loader.matrix(p + "self_attn.o_proj.weight", d, q_width));
    loader.on_expert_matrix([&](Weight* e) {
      return prepare_matrix(e, options.expert_quant, "layer " + std::to_string(l) + " experts", options);
    });
    MOEPP_RETURN_IF_ERROR(family->load_moe_layer(c, l, loader, &lw.moe));
    MOEPP_RETURN_IF_ERROR(m->prepare_layer(lw, l, options));
    report_progress();
  }
  MOEPP_ASSIGN_OR_RETURN(w.final_norm, loader.vector("model.norm.weight", d));
  if ((c.tie_word_embeddings && !loader.has("lm_head.weight")) ||
      loader.same_tensor("lm_head.weight", "model.embed_tokens.weight")) {
    w.lm_head = w.embed;  // the embedding's rows, one copy
    w.head_tied = true;
  } else {
    MOEPP_ASSIGN_OR_RETURN(w.lm_head, loader.matrix("lm_head.weight", c.vocab_size, d));
  }
  MOEPP_RETURN_IF_ERROR(loader.check_all_used());
  MOEPP_RETURN_IF_ERROR(m->prepare_head(options));
  if (options.progress) options.progress(total_bytes, total_bytes);  // ignored tensors included

  m->inv_freq_ = rope_inv_freq(c);
  return m;
}

Result<std::unique_ptr<Model>> Model::random(const ModelConfig& config, uint64_t seed, const LoadOptions& options) {
  const ModelConfig& c = config;
  if (c.n_layers <= 0 || c.d_model <= 0 || c.vocab_size <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.head_dim <= 0 || c.n_heads % c.n_kv_heads != 0 || static_cast<int64_t>(c.layers.size()) != c.n_layers)
    return Status::Error("random model: inconsistent shape (layers, heads, widths or layer specs)");
  if (options.shapes_only) return Status::Error("random model: shapes_only loads a checkpoint's shapes, not random weights");
  std::unique_ptr<Model> m(new Model());
  m->config_ = config;
  MOEPP_RETURN_IF_ERROR(m->set_precision(options));
  m->weight_format_ = "random";
  std::mt19937_64 rng(seed);
  const DType dt = m->precision_.weight_dtype();
  auto fill = [&](int64_t rows, int64_t cols, float stddev, float mean = 0.0f) {
    Weight w = make_owned_weight(dt, rows, cols);
    fill_random_normal(rng(), mean, stddev, dt, w.owner.get(), rows * cols);  // each matrix its own key
    return w;
  };
  const int64_t d = c.d_model;
  const float init = 0.02f;
  const float router_std = 1.0f / std::sqrt(static_cast<float>(d));
  ModelWeights& w = m->weights_;
  w.embed = fill(c.vocab_size, d, init);
  w.final_norm = fill(1, d, 0.0f, 1.0f);
  w.lm_head = c.tie_word_embeddings ? w.embed : fill(c.vocab_size, d, init);
  w.head_tied = c.tie_word_embeddings;
  MOEPP_RETURN_IF_ERROR(m->prepare_head(options));
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = w.layers[l];
    const MoeLayerSpec& spec = c.layers[l];
    lw.input_norm = fill(1, d, 0.0f, 1.0f);
    lw.post_norm = fill(1, d, 0.0f, 1.0f);
    lw.attention.q = fill(c.n_heads * c.head_dim, d, init);
    lw.attention.k = fill(c.n_kv_heads * c.head_dim, d, init);
    lw.attention.v = fill(c.n_kv_heads * c.head_dim, d, init);
    lw.attention.o = fill(d, c.n_heads * c.head_dim, init);
    const int64_t n = spec.n_experts();
    if (spec.router.network == RouterNetwork::kLinear) {
      lw.moe.router.w1 = fill(n, d, router_std);
    } else {
      lw.moe.router.w1 = fill(spec.router.hidden, d, router_std);
      lw.moe.router.w2 = fill(n, spec.router.hidden, 1.0f / std::sqrt(static_cast<float>(spec.router.hidden)));
    }
    if (spec.router.gating_residual) lw.moe.router.gate_map = fill(n, n, 1.0f / std::sqrt(static_cast<float>(n)));
    lw.moe.experts.resize(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) {
      ExpertWeights& ew = lw.moe.experts[e];
      if (spec.kinds[e] == ExpertKind::kFfn) {
        // Each expert prepared at once: a layer's originals at a time would add 10-20% to the
        // peak memory of a quantised model.
        const std::string where = "layer " + std::to_string(l) + " experts";
        ew.gate_up = fill(2 * spec.ffn_width[e], d, init);
        MOEPP_RETURN_IF_ERROR(prepare_matrix(&ew.gate_up, options.expert_quant, where, options));
        ew.down = fill(d, spec.ffn_width[e], init);
        MOEPP_RETURN_IF_ERROR(prepare_matrix(&ew.down, options.expert_quant, where, options));
      } else if (spec.kinds[e] == ExpertKind::kConstant) {
        ew.constant_gate = fill(2, d, init);
        ew.constant_value = fill(1, d, init);
      }
    }
    MOEPP_RETURN_IF_ERROR(m->prepare_layer(lw, l, options));
  }
  m->inv_freq_ = rope_inv_freq(c);
  return m;
}

Status Model::prepare_layer(LayerWeights& lw, int64_t layer, const LoadOptions& options) {
  const std::string where = "layer " + std::to_string(layer);
  for (Weight* w : {&lw.attention.q, &lw.attention.k, &lw.attention.v, &lw.attention.o})
    MOEPP_RETURN_IF_ERROR(prepare_matrix(w, options.rest_quant, where + " attention", options));
  for (ExpertWeights& e : lw.moe.experts) {
    MOEPP_RETURN_IF_ERROR(prepare_matrix(&e.gate_up, options.expert_quant, where + " experts", options));
    MOEPP_RETURN_IF_ERROR(prepare_matrix(&e.down, options.expert_quant, where + " experts", options));
  }
  return Status::Ok();
}

Status Model::prepare_head(const LoadOptions& options) {
  if (weights_.head_tied) return Status::Ok();  // the embedding's rows
  return prepare_matrix(&weights_.lm_head, options.rest_quant, "lm_head", options);
}

ParamCounts Model::param_counts() const {
  const ModelConfig& c = config_;
  auto count = [](const Weight& w) { return w.rows * w.cols; };
  ParamCounts pc;
  int64_t dense = count(weights_.embed) + count(weights_.final_norm);
  if (!weights_.head_tied) dense += count(weights_.lm_head);
  pc.total = dense;
  pc.active_max = pc.active_min = dense;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    const AttentionWeights& a = lw.attention;
    int64_t layer = count(lw.input_norm) + count(lw.post_norm) + count(a.q) + count(a.k) + count(a.v) + count(a.o) +
                    count(lw.moe.router.w1) + count(lw.moe.router.w2) + count(lw.moe.router.gate_map);
    std::vector<int64_t> expert_params;
    for (const ExpertWeights& e : lw.moe.experts)
      expert_params.push_back(count(e.gate_up) + count(e.down) + count(e.constant_gate) + count(e.constant_value));
    int64_t experts_total = 0;
    for (int64_t p : expert_params) experts_total += p;
    std::sort(expert_params.begin(), expert_params.end());
    const int k = c.layers[l].router.top_k;
    int64_t lo = 0, hi = 0;
    for (int j = 0; j < k; ++j) {
      lo += expert_params[j];
      hi += expert_params[expert_params.size() - 1 - j];
    }
    pc.total += layer + experts_total;
    pc.active_min += layer + lo;
    pc.active_max += layer + hi;
  }
  return pc;
}

size_t Model::weight_bytes() const {
  size_t bytes = weights_.embed.nbytes() + weights_.final_norm.nbytes();
  if (!weights_.head_tied) bytes += weights_.lm_head.nbytes();
  for (const LayerWeights& lw : weights_.layers) {
    for (const Weight* w : {&lw.input_norm, &lw.post_norm, &lw.attention.q, &lw.attention.k, &lw.attention.v,
                            &lw.attention.o, &lw.moe.router.w1, &lw.moe.router.w2, &lw.moe.router.gate_map})
      bytes += w->nbytes();
    for (const ExpertWeights& e : lw.moe.experts)
      bytes += e.gate_up.nbytes() + e.down.nbytes() + e.constant_gate.nbytes() + e.constant_value.nbytes();
  }
  return bytes;
}

std::unique_ptr<Model> Model::clone_sharing_weights() const {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir_;
  m->weight_format_ = weight_format_;
  m->config_ = config_;
  m->weights_ = weights_;  // views and shared owners: no copy of the tensors
  m->precision_ = precision_;
  m->kv_storage_ = kv_storage_;
  m->inv_freq_ = inv_freq_;
  m->checkpoint_dtypes_ = checkpoint_dtypes_;
  m->has_weight_values_ = has_weight_values_;
  return m;
}

std::unique_ptr<Model> Model::with_top_k(int top_k) const {
  std::unique_ptr<Model> m = clone_sharing_weights();
  for (MoeLayerSpec& layer : m->config_.layers)
    layer.router.top_k = static_cast<int>(std::clamp<int64_t>(top_k, 1, layer.n_experts()));
  return m;
}

Result<std::unique_ptr<Model>> Model::with_zero_computation_only() const {
  std::unique_ptr<Model> m = clone_sharing_weights();
  for (size_t l = 0; l < m->config_.layers.size(); ++l) {
    MoeLayerSpec& layer = m->config_.layers[l];
    const int64_t zc = layer.n_experts() - layer.count(ExpertKind::kFfn);
    if (layer.n_experts() > 1 && zc < layer.router.top_k)
      return Status::Error(str_format("layer %zu has %lld zero-computation experts, fewer than its top-k %d: a "
                                      "zero-computation-only draft needs an MoE++ model",
                                      l, static_cast<long long>(zc), layer.router.top_k));
    layer.router.zero_computation_only = true;
  }
  return m;
}

Status Model::check_batch(const Batch& batch, const KvCache& cache) const {
  if (!has_weight_values_) return Status::Error(dir_ + ": loaded for its shapes only (no weight values to run)");
  // A bf16 cache would round an f32 forward's keys and values (f32 storage holds either exactly).
  if (cache.bf16() && !precision_.bf16())
    return Status::Error("KV cache: expected f32 storage for a model computing in f32, found bf16");
  std::map<int32_t, int64_t> next_pos;  // sequence -> position its next token must have
  for (int64_t t = 0; t < batch.size(); ++t) {
    const int32_t token = batch.tokens[t];
    if (token < 0 || token >= config_.vocab_size)
      return Status::Error(str_format("token %lld: id %d out of range, expected [0, %lld)", static_cast<long long>(t),
                                      token, static_cast<long long>(config_.vocab_size)));
    const int32_t seq = batch.seq_ids[t];
    if (!cache.valid(seq)) return Status::Error(str_format("token %lld: unknown sequence %d", static_cast<long long>(t), seq));
    auto it = next_pos.find(seq);
    const int64_t expected = it == next_pos.end() ? cache.length(seq) : it->second;
    if (batch.positions[t] != expected)
      return Status::Error(str_format("token %lld of sequence %d: position %d, expected %lld (positions must continue the cache)",
                                      static_cast<long long>(t), seq, batch.positions[t], static_cast<long long>(expected)));
    next_pos[seq] = expected + 1;
  }
  return Status::Ok();
}

Status Model::forward(ThreadPool& pool, const Batch& batch, KvCache& cache, std::vector<float>* logits,
                      ForwardObserver* observer) const {
  MOEPP_RETURN_IF_ERROR(check_batch(batch, cache));
  if (logits == nullptr && batch.n_outputs() > 0)
    return Status::Error("forward: the batch asks for logits but no logits vector was given");
  const ModelConfig& c = config_;
  const Precision p = precision_;
  const int64_t n = batch.size();
  const int64_t d = c.d_model;
  for (int64_t t = 0; t < n; ++t) cache.reserve(batch.seq_ids[t], batch.positions[t] + 1);

  // Every element is written before it is read: no zero-fill (a memset of each, every forward).
  const size_t n_values = static_cast<size_t>(n * d);
  const std::unique_ptr<float[]> h = std::make_unique_for_overwrite<float[]>(n_values);       // [n, d] residual stream
  const std::unique_ptr<float[]> normed = std::make_unique_for_overwrite<float[]>(n_values);  // [n, d]
  const std::unique_ptr<float[]> branch = std::make_unique_for_overwrite<float[]>(n_values);  // [n, d] attention or MoE output
  for (int64_t t = 0; t < n; ++t) weights_.embed.row_to_f32(batch.tokens[t], &h[t * d]);

  const AttentionShape shape{d, c.n_heads, c.n_kv_heads, c.head_dim, c.sliding_window};
  std::vector<float> prev_logits, raw_logits;  // gating residual [n, n_experts]
  RoutingPlan plan;
  // Each residual add runs fused with the norm that follows it (add_rms_norm).
  if (c.n_layers > 0) rms_norm(pool, h.get(), n, d, weights_.layers[0].input_norm, c.rms_norm_eps, normed.get(), p);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    attention_forward(pool, shape, lw.attention, inv_freq_, batch, l, cache, normed.get(), branch.get(), p);
    add_rms_norm(pool, h.get(), branch.get(), n, d, lw.post_norm, c.rms_norm_eps, normed.get(), p);

    const MoeLayerSpec& spec = c.layers[l];
    raw_logits.assign(static_cast<size_t>(n * spec.n_experts()), 0.0f);
    const bool has_prev = l > 0 && prev_logits.size() == raw_logits.size();
    if (observer != nullptr) observer->on_moe_input(l, batch, normed.get(), has_prev ? prev_logits.data() : nullptr);
    moe_forward(pool, spec, lw.moe, normed.get(), n, d, has_prev ? prev_logits.data() : nullptr,
                raw_logits.data(), &plan, branch.get(), p);
    std::swap(prev_logits, raw_logits);
    if (l + 1 < c.n_layers)
      add_rms_norm(pool, h.get(), branch.get(), n, d, weights_.layers[l + 1].input_norm, c.rms_norm_eps, normed.get(), p);
    else
      parallel_ranges(pool, n, 16, [&](int64_t r0, int64_t r1) { add_inplace(&h[r0 * d], &branch[r0 * d], (r1 - r0) * d, p); });
    if (observer != nullptr) {
      observer->on_routing(l, batch, plan);
      observer->on_layer_output(l, batch, h.get());
    }
  }

  // Final norm and lm_head only for the rows whose logits are wanted.
  const int64_t n_out = batch.n_outputs();
  if (logits == nullptr) return Status::Ok();  // a pass for the cache or the observer only
  std::vector<float> rows(static_cast<size_t>(n_out * d));
  for (int64_t t = 0, r = 0; t < n; ++t)
    if (batch.want_logits[t]) std::copy(&h[t * d], &h[(t + 1) * d], rows.begin() + (r++) * d);
  std::vector<float> rows_normed(rows.size());
  rms_norm(rows.data(), n_out, d, weights_.final_norm, c.rms_norm_eps, rows_normed.data(), p);
  logits->resize(static_cast<size_t>(n_out * c.vocab_size));
  matmul(pool, rows_normed.data(), n_out, weights_.lm_head, logits->data(), p);
  return Status::Ok();
}

}  // namespace moepp
