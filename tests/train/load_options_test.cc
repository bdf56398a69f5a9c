// LoadOptions on real files. shapes_only (`moepp info`): every weight gets the shape and format a
// full load gives it, with nothing read or allocated, and the model refuses to run. progress: the
// bytes loaded, rising to the file's total. Checkpoints are written by export_model from random
// models: f32, bf16 and quantised files, tied and untied heads, MoE++ and vanilla expert tables.
#include <gtest/gtest.h>

#include <filesystem>
#include <utility>
#include <string>
#include <vector>

#include "models/model.h"
#include "scoped_dir.h"
#include "tiny_model.h"
#include "train/model_io.h"

namespace moepp {
namespace {

std::vector<const Weight*> all_weights(const ModelWeights& w) {
  std::vector<const Weight*> out = {&w.embed, &w.final_norm, &w.lm_head};
  for (const LayerWeights& lw : w.layers) {
    for (const Weight* x : {&lw.input_norm, &lw.post_norm, &lw.attention.q, &lw.attention.k, &lw.attention.v,
                            &lw.attention.o, &lw.moe.router.w1, &lw.moe.router.w2, &lw.moe.router.gate_map})
      out.push_back(x);
    for (const ExpertWeights& e : lw.moe.experts)
      for (const Weight* x : {&e.gate_up, &e.down, &e.constant_gate, &e.constant_value}) out.push_back(x);
  }
  return out;
}

struct Checkpoint {
  std::string dir;
  const char* what;
};

TEST(ShapesOnlyLoad, GivesEveryWeightTheFullLoadsShapeAndFormat) {
  const testing::ScopedDir scratch("moepp_shapes_only");  // removed however the test ends
  const std::string& base = scratch.path();
  testing::TinyShape moepp_shape;
  moepp_shape.d_model = 48;  // groups of 32 and a short one
  testing::TinyShape vanilla_shape = moepp_shape;
  vanilla_shape.shape = "moe-0.6b";
  ModelConfig tied = testing::tiny_config(moepp_shape);
  tied.tie_word_embeddings = true;
  ModelConfig untied = testing::tiny_config(vanilla_shape);
  untied.tie_word_embeddings = false;

  // Files: f32 and bf16 floats, and q4 experts beside q8 attention/lm_head.
  std::vector<Checkpoint> files;
  int n = 0;
  for (const ModelConfig& c : {tied, untied}) {
    for (StoredDType stored : {StoredDType::kF32, StoredDType::kBF16}) {
      auto m = Model::random(c, 3, LoadOptions{});
      ASSERT_TRUE(m.ok()) << m.status().message();
      files.push_back({base + "/" + std::to_string(n++), stored == StoredDType::kF32 ? "f32 file" : "bf16 file"});
      ASSERT_TRUE(export_model(**m, files.back().dir, stored).ok());
    }
    LoadOptions quantised;
    quantised.expert_quant = WeightQuant::kQ4;
    quantised.rest_quant = WeightQuant::kQ8;
    auto m = Model::random(c, 3, quantised);
    ASSERT_TRUE(m.ok()) << m.status().message();
    ExportQuant q;
    q.experts = WeightQuant::kQ4;
    q.rest = WeightQuant::kQ8;
    files.push_back({base + "/" + std::to_string(n++), "q4/q8 file"});
    ASSERT_TRUE(export_model(**m, files.back().dir, StoredDType::kBF16, q).ok());
  }

  int compared = 0, refused = 0;
  for (const Checkpoint& file : files) {
    for (ComputeDType dtype : {ComputeDType::kF32, ComputeDType::kBF16}) {
      for (auto [experts, rest] : {std::pair{WeightQuant::kNone, WeightQuant::kNone},
                                   std::pair{WeightQuant::kQ8, WeightQuant::kNone},
                                   std::pair{WeightQuant::kQ4, WeightQuant::kQ8}}) {
        LoadOptions full;
        full.dtype = dtype;
        full.expert_quant = experts;
        full.rest_quant = rest;
        LoadOptions shapes = full;
        shapes.shapes_only = true;
        const std::string what = std::string(file.what) + ", compute " + (dtype == ComputeDType::kF32 ? "f32" : "bf16") +
                                 ", experts " + quant_name(experts) + ", rest " + quant_name(rest);
        auto a = Model::load(file.dir, full);
        auto b = Model::load(file.dir, shapes);
        ASSERT_EQ(a.ok(), b.ok()) << what << ": " << (a.ok() ? b.status().message() : a.status().message());
        if (!a.ok()) {  // asking a q4 file for q8 experts: the same refusal
          EXPECT_EQ(a.status().message(), b.status().message()) << what;
          ++refused;
          continue;
        }
        const Model& m_full = **a;
        const Model& m_shapes = **b;
        EXPECT_TRUE(m_full.has_weight_values());
        EXPECT_FALSE(m_shapes.has_weight_values());
        EXPECT_EQ(m_full.weight_bytes(), m_shapes.weight_bytes()) << what;
        EXPECT_EQ(m_full.param_counts().total, m_shapes.param_counts().total) << what;
        EXPECT_EQ(m_full.param_counts().active_min, m_shapes.param_counts().active_min) << what;
        EXPECT_EQ(m_full.param_counts().active_max, m_shapes.param_counts().active_max) << what;
        EXPECT_EQ(m_full.checkpoint_dtypes(), m_shapes.checkpoint_dtypes()) << what;
        const std::vector<const Weight*> wa = all_weights(m_full.weights());
        const std::vector<const Weight*> wb = all_weights(m_shapes.weights());
        ASSERT_EQ(wa.size(), wb.size());
        for (size_t i = 0; i < wa.size(); ++i) {
          EXPECT_EQ(wa[i]->rows, wb[i]->rows) << what << ", weight " << i;
          EXPECT_EQ(wa[i]->cols, wb[i]->cols) << what << ", weight " << i;
          EXPECT_EQ(wa[i]->quant, wb[i]->quant) << what << ", weight " << i;
          EXPECT_EQ(wa[i]->dtype, wb[i]->dtype) << what << ", weight " << i;
          EXPECT_EQ(wa[i]->interleaved, wb[i]->interleaved) << what << ", weight " << i;
          EXPECT_EQ(wa[i]->empty(), wa[i]->rows == 0) << what << ", weight " << i;
          EXPECT_TRUE(wb[i]->empty()) << what << ": nothing allocated, weight " << i;
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * (2 * 2 * 3 + 2 * 2));  // float files: every option; q4/q8 files: none and q4/q8
  EXPECT_EQ(refused, 2 * 2);                    // q4/q8 files asked for q8 experts

  // Nothing to run: forward and its self-drafts refuse, with the reason.
  auto shapes_only = [&] {
    LoadOptions o;
    o.shapes_only = true;
    return Model::load(files[0].dir, o);
  }();
  ASSERT_TRUE(shapes_only.ok());
  ThreadPool pool(1);
  KvCache cache = (*shapes_only)->make_cache();
  const int32_t seq = cache.add_sequence();
  Batch batch;
  batch.add(1, 0, seq, true);
  std::vector<float> logits;
  const std::unique_ptr<Model> self_draft = (*shapes_only)->with_top_k(1);
  for (const Model* m : {shapes_only->get(), self_draft.get()}) {
    Status s = m->forward(pool, batch, cache, &logits);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("shapes only"), std::string::npos) << s.message();
  }
  EXPECT_FALSE(export_model(**shapes_only, base + "/export").ok());
  LoadOptions random_shapes;
  random_shapes.shapes_only = true;
  EXPECT_FALSE(Model::random(tied, 1, random_shapes).ok());
}

TEST(ShapesOnlyLoad, KeepsAQuantisedFileAsStoredWhenAskedForItsOwnFormat) {
  const testing::ScopedDir scratch("moepp_stored_q8");  // removed however the test ends
  const std::string& dir = scratch.path();
  LoadOptions q8;
  q8.expert_quant = WeightQuant::kQ8;
  q8.rest_quant = WeightQuant::kQ8;
  auto m = Model::random(testing::tiny_config(testing::TinyShape{}), 3, q8);
  ASSERT_TRUE(m.ok());
  ExportQuant q;
  q.experts = q.rest = WeightQuant::kQ8;
  ASSERT_TRUE(export_model(**m, dir, StoredDType::kF32, q).ok());
  for (bool shapes_only : {false, true}) {
    LoadOptions again = q8;  // the file's own format: loads as stored
    again.shapes_only = shapes_only;
    auto a = Model::load(dir, again);
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ((*a)->weights().layers[0].attention.q.quant, WeightQuant::kQ8);
    LoadOptions q4 = again;  // another: refused, naming both
    q4.expert_quant = WeightQuant::kQ4;
    auto b = Model::load(dir, q4);
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.status().message().find("stored as q8"), std::string::npos) << b.status().message();
    EXPECT_NE(b.status().message().find("to q4"), std::string::npos) << b.status().message();
  }
}

TEST(LoadProgress, RisesToTheFilesBytes) {
  const testing::ScopedDir scratch("moepp_load_progress");  // removed however the test ends
  const std::string& dir = scratch.path();
  testing::TinyShape shape;
  shape.layers = 3;
  auto m = Model::random(testing::tiny_config(shape), 3, LoadOptions{});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(export_model(**m, dir, StoredDType::kBF16).ok());
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(dir + "/model.safetensors"));
  for (bool shapes_only : {false, true}) {
    std::vector<std::pair<int64_t, int64_t>> calls;
    LoadOptions o;
    o.shapes_only = shapes_only;
    o.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
    ASSERT_TRUE(Model::load(dir, o).ok());
    ASSERT_EQ(calls.size(), 1u + 1u + 3u + 1u);  // the start, the embedding, each layer, the end
    EXPECT_EQ(calls[0].first, 0);
    calls.erase(calls.begin());
    const int64_t total = calls[0].second;
    EXPECT_GT(total, file_bytes * 9 / 10);  // the tensors: all of the file but its header
    EXPECT_LT(total, file_bytes);
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].second, total);
      EXPECT_GT(calls[i].first, i == 0 ? 0 : calls[i - 1].first) << "call " << i;
    }
    EXPECT_EQ(calls.back().first, total);
  }
}

}  // namespace
}  // namespace moepp
