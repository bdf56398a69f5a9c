// Training options, bad input, determinism across thread counts, and that a few steps on one
// batch lower the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <random>

#include "models/model.h"
#include "scoped_dir.h"
#include "train/decoder_grad.h"
#include "train/model_io.h"
#include "train/lr_schedule.h"
#include "train/trainer.h"

namespace moepp {
namespace {

// A tiny MoE++ model: 4 FFN + 2 constant + 1 copy + 1 zero experts, 2-layer router on layer specs.
ModelConfig tiny_config(bool mlp_router) {
  ModelConfig c;
  c.family = Family::kMoePP;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  MoeLayerSpec s;
  s.kinds = {ExpertKind::kFfn, ExpertKind::kFfn, ExpertKind::kFfn, ExpertKind::kFfn,
             ExpertKind::kConstant, ExpertKind::kConstant, ExpertKind::kCopy, ExpertKind::kZero};
  s.ffn_width = {8, 8, 8, 8, 0, 0, 0, 0};
  s.router.network = mlp_router ? RouterNetwork::kMlpTanh : RouterNetwork::kLinear;
  s.router.hidden = mlp_router ? 64 : 0;
  s.router.gating_residual = true;
  s.router.logit_std_norm = true;
  s.router.zero_expert_gets_no_weight = true;
  c.layers.assign(2, s);
  return c;
}

TrainBatch tiny_batch(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  TrainBatch b;
  b.n_seqs = 2;
  b.seq_len = 9;
  for (int64_t i = 0; i < b.n_seqs * b.seq_len; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  for (int64_t s = 0; s < b.n_seqs; ++s)
    for (int64_t i = 0; i < b.seq_len; ++i)
      b.targets.push_back(i + 1 < b.seq_len ? b.tokens[s * b.seq_len + i + 1] : kIgnoreLabel);
  return b;
}

TEST(TrainConfig, RejectsUntrainableConfigs) {
  ModelConfig c = tiny_config(false);
  c.n_kv_heads = 3;
  auto r = TrainParams::random(c, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("n_kv_heads"), std::string::npos) << r.status().message();

  c = tiny_config(false);
  c.layers[1].router.top_k = 9;
  r = TrainParams::random(c, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("top_k"), std::string::npos) << r.status().message();

  c = tiny_config(false);
  c.layers[0].router.scoring = RouterScoring::kTopKRaw;
  EXPECT_FALSE(TrainParams::random(c, 1).ok());

  c = tiny_config(false);
  c.layers.pop_back();
  EXPECT_FALSE(TrainParams::random(c, 1).ok());
}

TEST(TrainConfig, ParameterNamesFollowTheMoEppCheckpoint) {
  auto p = TrainParams::random(tiny_config(true), 3);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_NE(p->find("model.layers.1.mlp.moe.gate.wg.0.weight"), nullptr);
  EXPECT_NE(p->find("model.layers.1.mlp.moe.gate.gate_map.weight"), nullptr);
  EXPECT_NE(p->find("model.layers.0.mlp.moe.experts.experts.4.constant"), nullptr);
  EXPECT_EQ(p->find("model.layers.0.mlp.moe.experts.experts.6.up_proj.weight"), nullptr);  // copy expert
  const ParamTensor* emb = p->find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_FALSE(emb->decay);
  EXPECT_TRUE(p->find("lm_head.weight")->decay);
  EXPECT_FALSE(p->find("model.norm.weight")->decay);
}

TEST(TrainBatchCheck, RejectsBadTokensAndTargets) {
  const ModelConfig c = tiny_config(false);
  TrainBatch b = tiny_batch(c, 1);
  b.tokens[3] = 40;
  Status s = check_train_batch(c, b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("token 3"), std::string::npos) << s.message();
  b = tiny_batch(c, 1);
  b.targets[2] = -7;
  EXPECT_FALSE(check_train_batch(c, b).ok());
  b = tiny_batch(c, 1);
  b.targets.pop_back();
  EXPECT_FALSE(check_train_batch(c, b).ok());
}

TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s;
  s.init_lr = 0.0;
  s.max_lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_steps = 4;
  s.total_steps = 14;
  EXPECT_DOUBLE_EQ(s.lr(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(4), 1.0);
  EXPECT_NEAR(s.lr(9), 0.55, 1e-12);  // halfway through the decay
  EXPECT_DOUBLE_EQ(s.lr(14), 0.1);
  EXPECT_DOUBLE_EQ(s.lr(100), 0.1);
  s.min_lr = 2.0;
  EXPECT_FALSE(s.validate().ok());
}

TEST(TrainerOptions, RejectsBadValues) {
  TrainerOptions o;
  EXPECT_TRUE(o.validate().ok());
  o.adamw.beta2 = 1.0;
  EXPECT_FALSE(o.validate().ok());
  o = TrainerOptions{};
  o.grad_accum = 0;
  EXPECT_FALSE(o.validate().ok());
  o = TrainerOptions{};
  o.loss.tau = -1;
  EXPECT_FALSE(o.validate().ok());
  o = TrainerOptions{};
  o.adamw.eps = 0;
  EXPECT_FALSE(o.validate().ok());
  o = TrainerOptions{};
  o.capacity.factor = -1;
  EXPECT_FALSE(o.validate().ok());
}

TEST(TrainDeterminism, SameBitsForAnyThreadCount) {
  auto p = TrainParams::random(tiny_config(true), 7);
  ASSERT_TRUE(p.ok());
  const TrainBatch b = tiny_batch(p->config(), 2);
  std::vector<float> g1(p->size(), 0.0f), g3(p->size(), 0.0f);
  ThreadPool one(1), three(3);
  auto r1 = forward_backward(one, *p, b, LossOptions{}, g1.data());
  auto r3 = forward_backward(three, *p, b, LossOptions{}, g3.data());
  ASSERT_TRUE(r1.ok() && r3.ok());
  EXPECT_EQ(r1->loss, r3->loss);
  EXPECT_EQ(g1, g3);
  double norm = 0;
  for (float g : g1) norm += g * g;
  EXPECT_GT(norm, 0.0);
}

TEST(Trainer, LossFallsOnARepeatedBatch) {
  auto p = TrainParams::random(tiny_config(false), 5);
  ASSERT_TRUE(p.ok());
  TrainerOptions o;
  o.schedule.max_lr = 1e-2;
  o.schedule.min_lr = 1e-3;
  o.schedule.warmup_steps = 2;
  o.schedule.total_steps = 20;
  o.grad_accum = 2;
  auto t = Trainer::create(std::move(p).value(), o);
  ASSERT_TRUE(t.ok());
  std::vector<TrainBatch> micro = {tiny_batch(t->params().config(), 3), tiny_batch(t->params().config(), 4)};
  ThreadPool pool(2);
  double first = 0, last = 0;
  for (int s = 0; s < 20; ++s) {
    auto r = t->step(pool, micro);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_TRUE(std::isfinite(r->loss));
    if (s == 0) first = r->loss;
    last = r->loss;
  }
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;
  EXPECT_FALSE(t->step(pool, {micro[0]}).ok());  // wrong number of micro-batches
}

// Exported directories load in the inference engine and give the training forward's loss.
void expect_export_round_trip(const ModelConfig& c, const std::string& name) {
  auto p = TrainParams::random(c, 11);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const TrainBatch b = tiny_batch(c, 5);
  ThreadPool pool(2);
  auto r = forward_backward(pool, *p, b, LossOptions{}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const testing::ScopedDir scratch("moepp_export_" + name);  // removed however the test ends
  const std::string& dir = scratch.path();
  Status s = export_hf_model(*p, dir);
  ASSERT_TRUE(s.ok()) << s.message();
  auto m = Model::load(dir, LoadOptions{});
  ASSERT_TRUE(m.ok()) << m.status().message();
  double total = 0;
  int64_t count = 0;
  for (int64_t q = 0; q < b.n_seqs; ++q) {
    KvCache cache = (*m)->make_cache();
    const int32_t seq = cache.add_sequence();
    Batch batch;
    for (int64_t i = 0; i < b.seq_len; ++i) batch.add(b.tokens[q * b.seq_len + i], static_cast<int32_t>(i), seq, true);
    std::vector<float> logits;
    ASSERT_TRUE((*m)->forward(pool, batch, cache, &logits).ok());
    int64_t n_valid = 0;
    const double ce = cross_entropy(logits.data(), b.seq_len, c.vocab_size, &b.targets[q * b.seq_len], 1.0f, nullptr,
                                    &n_valid);
    total += ce * static_cast<double>(n_valid);
    count += n_valid;
  }
  EXPECT_NEAR(total / static_cast<double>(count), r->ce, 1e-5 * r->ce) << name;
}

TEST(TrainExport, MoEppLoadsBackWithTheSameLoss) {
  ModelConfig c = tiny_config(true);
  c.tie_word_embeddings = true;
  for (MoeLayerSpec& s : c.layers) s.input_scale = 2.0f;  // moe_feature_no_mul_topk = false
  expect_export_round_trip(c, "moepp");
}

// A vanilla MoE: FFN experts only, no gating residual (MoE++ checkpoints store a zero gate_map).
ModelConfig tiny_vanilla_config() {
  ModelConfig c = tiny_config(false);
  for (MoeLayerSpec& s : c.layers) {
    s.kinds.assign(6, ExpertKind::kFfn);
    s.ffn_width.assign(6, 8);
    s.router.gating_residual = false;
    s.router.logit_std_norm = false;
    s.router.zero_expert_gets_no_weight = false;
  }
  return c;
}

TEST(TrainExport, VanillaMoeLoadsBackAsMoEppWithZeroGateMap) {
  expect_export_round_trip(tiny_vanilla_config(), "vanilla");
}

// `quantize` and `convert` write a loaded model tensor by tensor (export_model); the file must be
// byte for byte what the f32 parameter copy's export writes: floats in f32 and in bf16, zero
// gate maps for a model without gating residual, and q8/q4 tensors with their scales when the
// model was quantised as it was built (the same random values, quantised at once, on a pool).
// The wide model has more than 64 rows a matrix (several pool tasks) and odd widths (short
// quantisation groups, a q4 row ending in half a byte); bf16 models are quantised from bf16.
TEST(TrainExport, ModelExportWritesTheParamsExportsFile) {
  ModelConfig wide = tiny_config(false);
  wide.d_model = 45;
  wide.vocab_size = 100;
  wide.tie_word_embeddings = false;
  for (MoeLayerSpec& s : wide.layers)
    for (size_t e = 0; e < s.ffn_width.size(); ++e)
      if (s.kinds[e] == ExpertKind::kFfn) s.ffn_width[e] = 72;
  ThreadPool pool(2);
  const testing::ScopedDir scratch("moepp_export_model");  // removed however the test ends
  const std::string& base = scratch.path();
  auto bytes_of = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  int cases = 0;
  for (const ModelConfig& c : {tiny_config(true), tiny_vanilla_config(), wide}) {
    for (ComputeDType compute : {ComputeDType::kF32, ComputeDType::kBF16}) {
      for (StoredDType stored : {StoredDType::kF32, StoredDType::kBF16}) {
        for (auto [experts, rest] : {std::pair{WeightQuant::kNone, WeightQuant::kNone},
                                     std::pair{WeightQuant::kQ4, WeightQuant::kQ8}}) {
          const std::string what = std::to_string(cases++);
          ExportQuant quant;
          quant.experts = experts;
          quant.rest = rest;
          LoadOptions floats;
          floats.dtype = compute;
          auto float_model = Model::random(c, 5, floats);
          ASSERT_TRUE(float_model.ok()) << float_model.status().message();
          auto params = TrainParams::from_model(**float_model);
          ASSERT_TRUE(params.ok()) << params.status().message();
          ASSERT_TRUE(export_hf_model(*params, base + "/params" + what, stored, quant).ok());
          LoadOptions load = floats;
          load.expert_quant = experts;
          load.rest_quant = rest;
          load.pool = &pool;
          auto model = Model::random(c, 5, load);
          ASSERT_TRUE(model.ok()) << model.status().message();
          quant.pool = &pool;
          Status s = export_model(**model, base + "/model" + what, stored, quant);
          ASSERT_TRUE(s.ok()) << s.message();
          const std::string a = bytes_of(base + "/params" + what + "/model.safetensors");
          EXPECT_GT(a.size(), 1000u) << what;
          EXPECT_TRUE(a == bytes_of(base + "/model" + what + "/model.safetensors")) << "case " << what;
          EXPECT_EQ(bytes_of(base + "/params" + what + "/config.json"), bytes_of(base + "/model" + what + "/config.json"));
        }
      }
    }
  }
  // A model loaded without the export's quantisation is refused, not stored as something else.
  auto f32_model = Model::random(tiny_config(true), 5, LoadOptions{});
  ASSERT_TRUE(f32_model.ok());
  ExportQuant q4;
  q4.experts = WeightQuant::kQ4;
  Status s = export_model(**f32_model, base + "/refused", StoredDType::kF32, q4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("expected q4"), std::string::npos) << s.message();
}

TEST(TrainExport, RejectsWhatMoEppCannotExpress) {
  ModelConfig c = tiny_config(false);
  c.layers[1].router.top_k = 3;
  auto j = moepp_config_json(c);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("layers differ"), std::string::npos) << j.status().message();
  c = tiny_config(false);
  for (MoeLayerSpec& s : c.layers) std::swap(s.kinds[0], s.kinds[7]);
  EXPECT_FALSE(moepp_config_json(c).ok());
}

}  // namespace
}  // namespace moepp
