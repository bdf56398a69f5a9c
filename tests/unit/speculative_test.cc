// Speculative decoding: greedy output equals plain greedy decoding token for token (every kind
// of draft, several K, drafts that force rejections); the KV cache after rejections equals a
// fresh run over the accepted tokens; sampled output follows the target's exact distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/draft_batch.h"
#include "runtime/speculative.h"
#include "tiny_model.h"

namespace moepp {
namespace {

std::unique_ptr<Model> tiny_model(uint64_t seed, int64_t vocab, float logit_scale) {
  testing::TinyShape t;
  t.vocab = vocab;
  t.d_model = 32;
  t.heads = 2;
  t.ffn = 16;
  t.seed = seed;
  std::unique_ptr<Model> m = testing::tiny_model(t);
  // Sharper next-token distributions than N(0, 0.02) weights give, so that draft and target
  // disagree often and the acceptance rule has something to correct.
  Weight& head = m->mutable_weights().lm_head;
  float* w = static_cast<float*>(const_cast<void*>(head.data));
  for (int64_t i = 0; i < head.rows * head.cols; ++i) w[i] *= logit_scale;
  return m;
}

std::vector<int32_t> plain(ThreadPool& pool, const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& g) {
  auto out = generate(pool, m, prompt, g, [](int32_t) { return true; }, nullptr);
  EXPECT_TRUE(out.ok());
  return *out;
}

TEST(Speculative, GreedyEqualsPlainForEveryDraftAndK) {
  ThreadPool pool(1);
  auto target = tiny_model(1, 64, 40.0f);
  auto other = tiny_model(2, 64, 40.0f);  // an unrelated draft: mostly rejected
  auto self = target->with_top_k(1);
  auto zc = target->with_zero_computation_only();
  ASSERT_TRUE(zc.ok()) << zc.status().message();
  const std::vector<int32_t> prompt = {3, 7, 9, 3, 7, 9, 3, 7, 11, 5};
  GenerateOptions g;
  g.max_new_tokens = 30;
  g.stop_at_eos = false;
  const std::vector<int32_t> expected = plain(pool, *target, prompt, g);
  for (int k : {1, 2, 3, 5, 8}) {
    for (bool adaptive : {false, true}) {
      SpeculativeOptions spec;
      spec.draft_n = k;
      spec.adaptive = adaptive;
      ModelDrafter d_other(*other, pool, g.sampling, "other");
      ModelDrafter d_self(*self, pool, g.sampling, "self");
      ModelDrafter d_same(*target, pool, g.sampling, "same");
      ModelDrafter d_zc(**zc, pool, g.sampling, "zc");
      NgramDrafter d_ngram;
      for (Drafter* d : std::vector<Drafter*>{&d_other, &d_self, &d_same, &d_zc, &d_ngram}) {
        SpeculativeStats st;
        auto out = generate_speculative(pool, *target, *d, prompt, g, spec, [](int32_t) { return true; }, &st);
        ASSERT_TRUE(out.ok()) << out.status().message();
        EXPECT_EQ(*out, expected) << d->name() << " K=" << k << " adaptive=" << adaptive;
        if (std::string(d->name()) == "same") {
          EXPECT_EQ(st.accepted, st.drafted) << "the target as its own draft is always right";
        }
        if (std::string(d->name()) == "other" && k >= 3) {
          EXPECT_LT(st.accepted, st.drafted) << "an unrelated draft must be rejected sometimes";
        }
      }
    }
  }
}

// Records what every layer's router chose and the probabilities it chose from.
struct PlanRecorder : ForwardObserver {
  std::vector<RoutingPlan> plans;
  void on_routing(int64_t, const Batch&, const RoutingPlan& plan) override { plans.push_back(plan); }
};

TEST(Speculative, ZeroComputationDraftNeverRunsAnFfnExpert) {
  ThreadPool pool(1);
  auto target = tiny_model(1, 64, 1.0f);
  auto zc = target->with_zero_computation_only();
  ASSERT_TRUE(zc.ok()) << zc.status().message();
  PlanRecorder full, cheap;
  for (auto [model, rec] : {std::pair{target.get(), &full}, std::pair{zc->get(), &cheap}}) {
    KvCache cache = model->make_cache();
    const int32_t seq = cache.add_sequence();
    Batch batch;
    for (int32_t i = 0; i < 12; ++i) batch.add(static_cast<int32_t>((i * 7 + 3) % 64), i, seq, i == 11);
    std::vector<float> logits;
    ASSERT_TRUE(model->forward(pool, batch, cache, &logits, rec).ok());
  }
  ASSERT_EQ(full.plans.size(), cheap.plans.size());
  const MoeLayerSpec& spec = target->config().layers[0];
  int64_t ffn_in_full = 0;
  for (size_t l = 0; l < cheap.plans.size(); ++l) {
    const RoutingPlan& p = cheap.plans[l];
    for (size_t i = 0; i < p.experts.size(); ++i) {
      EXPECT_NE(spec.kinds[p.experts[i]], ExpertKind::kFfn) << "layer " << l << " slot " << i;
      ffn_in_full += spec.kinds[full.plans[l].experts[i]] == ExpertKind::kFfn;
    }
    // Layer 0 sees the same hidden states in both models: the same router probabilities.
    if (l == 0) {
      EXPECT_EQ(p.scores, full.plans[0].scores);
    }
  }
  EXPECT_GT(ffn_in_full, 0) << "the full model must use FFN experts, or the test shows nothing";
}

TEST(Speculative, ZeroComputationDraftNeedsZeroComputationExperts) {
  testing::TinyShape t;
  t.shape = "moe-0.6b";
  auto vanilla = testing::tiny_model(t);
  auto zc = vanilla->with_zero_computation_only();
  ASSERT_FALSE(zc.ok());
  EXPECT_NE(zc.status().message().find("zero-computation"), std::string::npos) << zc.status().message();
}

TEST(Speculative, BatchedDraftsEqualOneSequenceAtATime) {
  ThreadPool pool(1);
  auto draft = tiny_model(2, 64, 40.0f);
  BatchedModelDrafter batched(*draft, pool);
  std::vector<std::vector<int32_t>> committed = {{1, 2, 3}, {9, 8, 7, 6, 5}, {4}};
  const std::vector<int> ks = {3, 1, 5};
  std::vector<int32_t> slots;
  std::vector<std::unique_ptr<ModelDrafter>> single;
  for (size_t i = 0; i < committed.size(); ++i) {
    slots.push_back(batched.add_sequence());
    single.push_back(std::make_unique<ModelDrafter>(*draft, pool, SamplingParams{}, "single"));
  }
  for (int round = 0; round < 3; ++round) {
    std::vector<std::vector<int32_t>> got(committed.size());
    std::vector<BatchedModelDrafter::Request> requests;
    for (size_t i = 0; i < committed.size(); ++i) requests.push_back({slots[i], &committed[i], ks[i], &got[i]});
    ASSERT_TRUE(batched.propose(requests).ok());
    for (size_t i = 0; i < committed.size(); ++i) {
      std::vector<int32_t> want;
      std::vector<std::vector<float>> probs;
      ASSERT_TRUE(single[i]->propose(committed[i], ks[i], &want, &probs).ok());
      EXPECT_EQ(got[i], want) << "round " << round << " sequence " << i;
      EXPECT_EQ(got[i].size(), static_cast<size_t>(ks[i]));
      // The target keeps the first draft only and adds a token of its own.
      const int64_t valid = static_cast<int64_t>(committed[i].size()) + 1;
      batched.rollback(slots[i], valid);
      single[i]->rollback(valid);
      committed[i].push_back(got[i][0]);
      committed[i].push_back(static_cast<int32_t>((round * 13 + i * 5 + 1) % 64));
    }
  }
}

TEST(Speculative, StopsLikePlainDecoding) {
  ThreadPool pool(1);
  auto target = tiny_model(1, 64, 40.0f);
  const std::vector<int32_t> prompt = {1, 2, 3};
  GenerateOptions g;
  g.max_new_tokens = 20;
  g.stop_at_eos = false;
  const std::vector<int32_t> full = plain(pool, *target, prompt, g);
  g.extra_stop_ids = {full[6]};
  const std::vector<int32_t> cut = plain(pool, *target, prompt, g);
  ModelDrafter d(*target, pool, g.sampling, "same");
  SpeculativeOptions spec;
  spec.draft_n = 8;
  auto out = generate_speculative(pool, *target, d, prompt, g, spec, [](int32_t) { return true; }, nullptr);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, cut);
  for (int64_t n : {1, 2, 7}) {
    g.extra_stop_ids.clear();
    g.max_new_tokens = n;
    ModelDrafter d2(*target, pool, g.sampling, "same");
    auto o2 = generate_speculative(pool, *target, d2, prompt, g, spec, [](int32_t) { return true; }, nullptr);
    ASSERT_TRUE(o2.ok());
    EXPECT_EQ(static_cast<int64_t>(o2->size()), n);
  }
}

TEST(Speculative, CacheAfterRejectionsEqualsFreshRun) {
  ThreadPool pool(1);
  auto target = tiny_model(1, 64, 40.0f);
  auto other = tiny_model(2, 64, 40.0f);
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42};
  GenerateOptions g;
  g.max_new_tokens = 17;
  g.stop_at_eos = false;
  ModelDrafter d(*other, pool, g.sampling, "other");
  SpeculativeOptions spec;
  spec.draft_n = 4;
  KvCache cache = target->make_cache();
  int32_t seq = -1;
  SpeculativeStats st;
  auto out = generate_speculative(pool, *target, d, prompt, g, spec, [](int32_t) { return true; }, &st, &cache, &seq);
  ASSERT_TRUE(out.ok());
  ASSERT_LT(st.accepted, st.drafted);  // there were rejections to roll back
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), out->begin(), out->end());
  // The cache holds every token but the last; feed the last one and compare with a fresh run.
  ASSERT_EQ(cache.length(seq), static_cast<int64_t>(all.size()) - 1);
  Batch b;
  b.add(all.back(), static_cast<int32_t>(all.size() - 1), seq, true);
  std::vector<float> spec_logits, fresh_logits;
  ASSERT_TRUE(target->forward(pool, b, cache, &spec_logits).ok());
  KvCache fresh = target->make_cache();
  const int32_t fs = fresh.add_sequence();
  Batch fb;
  for (size_t i = 0; i < all.size(); ++i) fb.add(all[i], static_cast<int32_t>(i), fs, i + 1 == all.size());
  ASSERT_TRUE(target->forward(pool, fb, fresh, &fresh_logits).ok());
  ASSERT_EQ(spec_logits.size(), fresh_logits.size());
  for (size_t i = 0; i < spec_logits.size(); ++i) EXPECT_NEAR(spec_logits[i], fresh_logits[i], 1e-4f) << i;
}

// Exact probabilities of the first generated tokens under plain sampling (temperature 1,
// optional top-k), computed from the target's logits by enumeration.
std::vector<double> softmax_top_k(const float* logits, int64_t vocab, int top_k) {
  std::vector<double> p(static_cast<size_t>(vocab), 0.0);
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  for (int64_t v = 0; v < vocab; ++v) ids[static_cast<size_t>(v)] = static_cast<int32_t>(v);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  const size_t keep = top_k > 0 ? static_cast<size_t>(top_k) : ids.size();
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[static_cast<size_t>(ids[i])] = std::exp(static_cast<double>(logits[ids[i]] - logits[ids[0]]));
  for (double& x : p) x /= sum;
  return p;
}

std::vector<double> next_probs(ThreadPool& pool, const Model& m, const std::vector<int32_t>& tokens, int top_k) {
  KvCache c = m.make_cache();
  const int32_t s = c.add_sequence();
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), s, i + 1 == tokens.size());
  std::vector<float> logits;
  EXPECT_TRUE(m.forward(pool, b, c, &logits).ok());
  return softmax_top_k(logits.data(), m.config().vocab_size, top_k);
}

TEST(Speculative, SampledOutputFollowsTheTargetDistribution) {
  ThreadPool pool(1);
  const int64_t vocab = 12;
  auto target = tiny_model(5, vocab, 60.0f);
  auto draft = tiny_model(6, vocab, 60.0f);
  const std::vector<int32_t> prompt = {1, 4, 2};
  for (int top_k : {0, 4}) {
    // Exact marginals of the 2nd and 3rd generated tokens (the 1st comes from the prefill and
    // never meets the draft).
    const std::vector<double> p0 = next_probs(pool, *target, prompt, top_k);
    std::vector<double> m1(vocab, 0.0), m2(vocab, 0.0);
    for (int32_t a = 0; a < vocab; ++a) {
      if (p0[static_cast<size_t>(a)] == 0) continue;
      std::vector<int32_t> pa = prompt;
      pa.push_back(a);
      const std::vector<double> p1 = next_probs(pool, *target, pa, top_k);
      for (int32_t b = 0; b < vocab; ++b) {
        const double pab = p0[static_cast<size_t>(a)] * p1[static_cast<size_t>(b)];
        m1[static_cast<size_t>(b)] += pab;
        if (pab < 1e-6) continue;
        std::vector<int32_t> pb = pa;
        pb.push_back(b);
        const std::vector<double> p2 = next_probs(pool, *target, pb, top_k);
        for (int32_t c = 0; c < vocab; ++c) m2[static_cast<size_t>(c)] += pab * p2[static_cast<size_t>(c)];
      }
    }
    // Samples: one speculative run per seed, K = 2 so both tokens pass the acceptance rule.
    const int runs = 3000;
    std::vector<double> c1(vocab, 0.0), c2(vocab, 0.0);
    SpeculativeStats total;
    for (int r = 0; r < runs; ++r) {
      GenerateOptions g;
      g.max_new_tokens = 3;
      g.stop_at_eos = false;
      g.sampling = {1.0f, top_k, 1.0f, static_cast<uint64_t>(1000 + r)};
      SamplingParams ds = g.sampling;
      ds.seed += 777777;
      ModelDrafter d(*draft, pool, ds, "draft");
      SpeculativeOptions spec;
      spec.draft_n = 2;
      spec.adaptive = false;
      SpeculativeStats st;
      auto out = generate_speculative(pool, *target, d, prompt, g, spec, [](int32_t) { return true; }, &st);
      ASSERT_TRUE(out.ok());
      ASSERT_EQ(out->size(), 3u);
      c1[static_cast<size_t>((*out)[1])] += 1;
      c2[static_cast<size_t>((*out)[2])] += 1;
      total.drafted += st.drafted;
      total.accepted += st.accepted;
    }
    ASSERT_GT(total.accepted, 0);
    ASSERT_LT(total.accepted, total.drafted);  // both branches of the rule were taken
    // Pearson chi-square against the exact distribution, cells with expected count >= 5
    // pooled otherwise. The bound is the 0.999 quantile of chi-square with (cells - 1) degrees
    // of freedom (Wilson-Hilferty approximation), so a correct sampler fails 1 time in 1000
    // per check; the fixed seeds make the outcome reproducible.
    for (const auto& [counts, exact] : {std::make_pair(&c1, &m1), std::make_pair(&c2, &m2)}) {
      double chi2 = 0, pool_obs = 0, pool_exp = 0;
      int cells = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        const double e = (*exact)[static_cast<size_t>(v)] * runs;
        if (e < 5) {
          pool_obs += (*counts)[static_cast<size_t>(v)];
          pool_exp += e;
          continue;
        }
        chi2 += ((*counts)[static_cast<size_t>(v)] - e) * ((*counts)[static_cast<size_t>(v)] - e) / e;
        ++cells;
      }
      if (pool_exp >= 5) {
        chi2 += (pool_obs - pool_exp) * (pool_obs - pool_exp) / pool_exp;
        ++cells;
      } else {
        EXPECT_LE(pool_obs, 15.0) << "tokens the target almost never samples came out often";
      }
      const double df = cells - 1, z = 3.090;  // z of the 0.999 quantile
      const double bound = df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3);
      EXPECT_LT(chi2, bound) << "top_k=" << top_k << " cells=" << cells;
    }
  }
}

}  // namespace
}  // namespace moepp
