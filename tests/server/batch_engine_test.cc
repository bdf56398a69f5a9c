// The continuous-batching engine against the plain one-sequence generator: concurrent requests
// (with chunked prompts joining mid-decode) give the same tokens as running them one by one.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/generator.h"
#include "server/batch_engine.h"
#include "tiny_model.h"

namespace moepp::server {
namespace {

std::unique_ptr<Model> tiny_model() {
  testing::TinyShape t;
  t.seed = 11;
  return testing::tiny_model(t);
}

std::vector<int32_t> prompt_of(int i) {
  std::vector<int32_t> p;
  for (int t = 0; t < 3 + 4 * i; ++t) p.push_back((37 * i + 11 * t + 5) % 300);
  return p;
}

std::vector<int32_t> drain(RequestStream& s, std::vector<TokenEvent>* events = nullptr) {
  std::vector<int32_t> ids;
  TokenEvent e;
  while (s.next(&e)) {
    ids.push_back(e.id);
    if (events) events->push_back(e);
  }
  return ids;
}

std::vector<int32_t> one_by_one(ThreadPool& pool, const Model& m, const EngineRequest& r) {
  GenerateOptions g;
  g.max_new_tokens = r.max_tokens;
  g.sampling = r.sampling;
  g.stop_at_eos = false;
  g.extra_stop_ids = r.stop_ids;
  auto out = generate(pool, m, r.prompt, g, [](int32_t) { return true; }, nullptr);
  EXPECT_TRUE(out.ok());
  std::vector<int32_t> ids = *out;
  // The engine does not send the stop token itself.
  if (!ids.empty() && std::find(r.stop_ids.begin(), r.stop_ids.end(), ids.back()) != r.stop_ids.end()) ids.pop_back();
  return ids;
}

TEST(BatchEngine, ConcurrentRequestsEqualOneByOne) {
  auto model = tiny_model();
  ThreadPool pool(2), reference_pool(1);  // a pool serves one caller at a time: the engine has its own
  EngineOptions o;
  o.parallel = 3;       // more requests than slots: some wait and join mid-decode
  o.step_tokens = 8;    // long prompts are split over several steps
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 7; ++i) {
    EngineRequest r;
    r.prompt = prompt_of(i);
    r.max_tokens = 5 + 3 * i;
    if (i % 2 == 1) r.sampling = {0.9f, 20, 0.95f, static_cast<uint64_t>(100 + i)};  // sampled, seeded
    requests.push_back(r);
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  {
    BatchEngine engine(*model, pool, o, nullptr);
    for (const auto& r : requests) {
      streams.push_back(engine.try_submit(r));
      ASSERT_NE(streams.back(), nullptr);
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      const std::vector<int32_t> got = drain(*streams[i]);
      EXPECT_EQ(streams[i]->finish_reason(), FinishReason::kLength);
      EXPECT_EQ(got, one_by_one(reference_pool, *model, requests[i])) << "request " << i;
    }
  }
}

TEST(BatchEngine, SpeculativeStepsKeepGreedyOutputs) {
  auto model = tiny_model();
  auto self = model->with_top_k(1);
  ThreadPool pool(1), reference_pool(1);
  using Factory = std::function<std::unique_ptr<Drafter>()>;
  struct Case {
    const char* name;
    Factory factory;            // a drafter per sequence
    const Model* batched;       // or one draft model drafting for all sequences in shared passes
  };
  const std::vector<Case> drafters = {
      {"ngram", [] { return std::make_unique<NgramDrafter>(); }, nullptr},
      {"self-top1", [&] { return std::make_unique<ModelDrafter>(*self, pool, SamplingParams{}, "self"); }, nullptr},
      {"same", [&] { return std::make_unique<ModelDrafter>(*model, pool, SamplingParams{}, "same"); }, nullptr},
      {"batched self-top1", nullptr, self.get()},
      {"batched same", nullptr, model.get()},
  };
  for (const auto& [name, factory, batched] : drafters) {
    EngineOptions o;
    o.parallel = 3;
    o.step_tokens = 16;
    o.make_drafter = factory;
    o.draft_model = batched;
    o.draft_n = 3;
    BatchEngine engine(*model, pool, o, nullptr);
    std::vector<EngineRequest> requests;
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < 5; ++i) {
      EngineRequest r;
      r.prompt = prompt_of(i);
      r.prompt.insert(r.prompt.end(), r.prompt.begin(), r.prompt.end());  // repeats, for the n-gram draft
      r.max_tokens = 4 + 5 * i;
      r.top_logprobs = 1;
      r.routes = true;
      requests.push_back(r);
      streams.push_back(engine.try_submit(r));
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      std::vector<TokenEvent> events;
      EXPECT_EQ(drain(*streams[i], &events), one_by_one(reference_pool, *model, requests[i])) << name << " request " << i;
      for (const TokenEvent& e : events) {
        ASSERT_EQ(e.top.size(), 1u);
        EXPECT_EQ(e.top[0].first, e.id) << name;  // each token's own row: greedy = most likely
        EXPECT_EQ(e.experts.size(), static_cast<size_t>(model->config().n_layers * model->config().layers[0].router.top_k));
      }
    }
  }
}

TEST(BatchEngine, StopTokenEndsWithoutBeingSent) {
  auto model = tiny_model();
  ThreadPool pool(1);
  EngineRequest r;
  r.prompt = prompt_of(2);
  r.max_tokens = 12;
  BatchEngine engine(*model, pool, EngineOptions{}, nullptr);
  const std::vector<int32_t> full = drain(*engine.try_submit(r));
  ASSERT_EQ(full.size(), 12u);
  r.stop_ids = {full[4]};
  auto s = engine.try_submit(r);
  const std::vector<int32_t> cut = drain(*s);
  const size_t first = static_cast<size_t>(std::find(full.begin(), full.end(), full[4]) - full.begin());
  EXPECT_EQ(cut, std::vector<int32_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(first)));
  EXPECT_EQ(s->finish_reason(), FinishReason::kStop);
}

TEST(BatchEngine, LogprobsAndRoutes) {
  auto model = tiny_model();
  ThreadPool pool(1);
  EngineRequest r;
  r.prompt = prompt_of(1);
  r.max_tokens = 4;
  r.top_logprobs = 3;
  r.routes = true;
  BatchEngine engine(*model, pool, EngineOptions{}, nullptr);
  std::vector<TokenEvent> events;
  drain(*engine.try_submit(r), &events);
  ASSERT_EQ(events.size(), 4u);
  const size_t route_size = static_cast<size_t>(model->config().n_layers * model->config().layers[0].router.top_k);
  for (const TokenEvent& e : events) {
    ASSERT_EQ(e.top.size(), 3u);
    EXPECT_EQ(e.top[0].first, e.id);  // greedy: the chosen token is the most likely
    EXPECT_FLOAT_EQ(e.top[0].second, e.logprob);
    EXPECT_LE(e.top[1].second, e.top[0].second);
    double mass = 0;
    for (const auto& [id, lp] : e.top) mass += std::exp(lp);
    EXPECT_LT(mass, 1.0 + 1e-6);
    EXPECT_LT(e.logprob, 0.0f);
    ASSERT_EQ(e.experts.size(), route_size);
    for (int32_t x : e.experts) EXPECT_TRUE(x >= 0 && x < model->config().layers[0].n_experts());
  }
}

TEST(BatchEngine, CancelFreesTheSlotAndQueueIsBounded) {
  auto model = tiny_model();
  ThreadPool pool(1);
  EngineOptions o;
  o.parallel = 1;
  o.max_queue = 1;
  BatchEngine engine(*model, pool, o, nullptr);
  EngineRequest r;
  r.prompt = prompt_of(0);
  r.max_tokens = 100000;  // runs until cancelled
  auto a = engine.try_submit(r);
  auto b = engine.try_submit(r);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(engine.try_submit(r), nullptr);  // one slot + one queue place, both taken
  TokenEvent e;
  ASSERT_TRUE(a->next(&e));
  a->cancel();
  drain(*a);
  EXPECT_EQ(a->finish_reason(), FinishReason::kCancelled);
  ASSERT_TRUE(b->next(&e));  // b got the freed slot
  b->cancel();
  drain(*b);
  r.max_tokens = 3;
  auto c = engine.try_submit(r);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(drain(*c).size(), 3u);
  EXPECT_EQ(c->finish_reason(), FinishReason::kLength);
}

}  // namespace
}  // namespace moepp::server
