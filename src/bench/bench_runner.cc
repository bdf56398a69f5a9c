// pp / tg runs over the matrix, and the expert-layer comparison (see bench_runner.h).
// Prompts are random tokens (a repeated token would route every position to the same experts).
// Each test runs one untimed warm-up, then `repetitions` timed runs from an empty KV cache.
#include "bench/bench_runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "bench/forward_cost.h"
#include "bench/weights_read.h"
#include "bench/shapes.h"
#include "bench/zc_bias.h"
#include "moe/moe_layer.h"
#include "platform/heap_tuning.h"
#include "platform/memory_usage.h"

namespace moepp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void progress(const BenchConfig& config, const std::string& text) {
  if (!config.progress) return;
  std::fprintf(stderr, "\r\033[Kmoepp bench: %s", text.c_str());
  std::fflush(stderr);
}

void progress_done(const BenchConfig& config) {
  if (config.progress) std::fprintf(stderr, "\r\033[K");
}

// The measured peak a row's FLOP rate is compared with: for bf16 weights the faster of the bf16
// dot product and fp32 FMAs (bf16 converted to f32 is exact, and on CPUs whose vdpbf16ps runs at
// half the FMA's rate, as Intel's, the kernels take that way); for q8/q4 experts the int8 dot
// product the integer path runs on (vpdpbusd, or vpmaddubsw + vpmaddwd + vpaddd: one group sum
// per 16 rows has left its conversions and FMAs few enough that fp32 no longer bounds it); for
// the rest fp32.
std::pair<double, std::string> flop_peak(const BenchConfig& config, const MachineLimits& m) {
  if (config.load.expert_quant != WeightQuant::kNone && m.int8_gop_s > 0) return {m.int8_gop_s, "int8"};
  if (config.load.dtype == ComputeDType::kBF16 && config.load.expert_quant == WeightQuant::kNone && m.bf16_native &&
      m.bf16_gflop_s >= m.fp32_gflop_s)
    return {m.bf16_gflop_s, "bf16"};
  return {m.fp32_gflop_s, "fp32"};
}

// Fills the timing and rate fields of a row from per-repetition seconds and the cost of one run;
// `reads`: GB/s of the plain weight reads taken between the repetitions (may be empty).
void fill_rates(const BenchConfig& config, const MachineTable& limits, const std::vector<double>& seconds,
                const ForwardCost& cost, BenchRow* row, const std::vector<double>& reads = {}) {
  std::vector<double> rates;
  for (double s : seconds) rates.push_back(static_cast<double>(row->n_tokens) / s);
  row->repetitions = static_cast<int>(seconds.size());
  row->tok_s = median(rates);
  row->tok_s_min = *std::min_element(rates.begin(), rates.end());
  row->tok_s_max = *std::max_element(rates.begin(), rates.end());
  const double t = median(seconds);
  row->gb_s = cost.bytes / t / 1e9;
  row->gflop_s = cost.flops / t / 1e9;
  auto it = limits.find(row->threads);
  if (it != limits.end()) {
    const auto [peak, name] = flop_peak(config, it->second);
    row->machine_bw_share = it->second.read_gb_s > 0 ? row->gb_s / it->second.read_gb_s : 0;
    row->bw_share = row->machine_bw_share;
    row->flop_share = peak > 0 ? row->gflop_s / peak : 0;
    row->peak = name;
    row->limit_gb_s = it->second.read_gb_s;
    row->limit_gflop_s = peak;
  }
  // The best read, as the machine's limit is the best of its passes.
  if (!reads.empty()) row->read_gb_s = *std::max_element(reads.begin(), reads.end());
  if (row->read_gb_s > 0) row->bw_share = row->gb_s / row->read_gb_s;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

}  // namespace

Result<std::unique_ptr<Model>> build_model(const BenchModel& bm, const BenchConfig& config) {
  // The weights are prepared on a pool of their own, gone before anything is timed.
  ThreadPool load_pool(ThreadPool::default_threads());
  LoadOptions load = config.load;
  load.pool = &load_pool;
  if (!bm.dir.empty()) {
    if (config.max_layers > 0) return Status::Error("--layers: only with --model-shape (a checkpoint runs all its layers)");
    progress(config, "loading " + bm.dir);
    return Model::load(bm.dir, load);
  }
  MOEPP_ASSIGN_OR_RETURN(ModelConfig c, shape_config(bm.shape, config.max_layers));
  const double bytes_per_param = config.load.dtype == ComputeDType::kBF16 ? 2.0 : 4.0;
  const double need = static_cast<double>(shape_params(c).total) * bytes_per_param;
  const int64_t have = available_memory_bytes();
  if (have > 0 && need > 0.9 * static_cast<double>(have))
    return Status::Error(str_format("--model-shape %s: needs about %.1f GiB of weights at %s, %.1f GiB available; "
                                    "use --layers N (or --weights bf16)",
                                    bm.shape.c_str(), need / (1 << 30), config.weights.c_str(),
                                    static_cast<double>(have) / (1 << 30)));
  progress(config, str_format("building %s (%lld layers, random %s weights, %.1f GiB)", bm.shape.c_str(),
                              static_cast<long long>(c.n_layers), config.weights.c_str(), need / (1 << 30)));
  return Model::random(c, config.seed, load);
}

namespace {

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& v : t) v = dist(rng);
  return t;
}

// One prompt of n tokens as a single batch after the cache's first `depth` positions; logits for
// the last token only. The cache is the test's own, cut back to its context, as llama-bench
// clears its context's: its memory is allocated once per test, not timed in every repetition.
Status time_prompt(const Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens, int64_t depth,
                   KvCache& cache, int32_t seq, CostCounter* counter, double* seconds, ForwardCost* cost) {
  cache.truncate(seq, depth);
  Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i)
    batch.add(tokens[i], static_cast<int32_t>(depth + static_cast<int64_t>(i)), seq, i + 1 == tokens.size());
  std::vector<float> logits;
  counter->begin(batch, cache);
  const auto t0 = Clock::now();
  MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits, counter));
  *seconds = seconds_since(t0);
  *cost = counter->end();
  return Status::Ok();
}

// n decode steps of one token each after the cache's first `depth` positions, as llama-bench's
// tg test (its -d for depth).
Status time_generation(const Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens, int64_t depth,
                       KvCache& cache, int32_t seq, CostCounter* counter, double* seconds, ForwardCost* cost) {
  cache.truncate(seq, depth);
  std::vector<float> logits;
  *cost = ForwardCost();
  double total = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Batch batch;
    batch.add(tokens[i], static_cast<int32_t>(depth + static_cast<int64_t>(i)), seq, true);
    counter->begin(batch, cache);
    const auto t0 = Clock::now();
    MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits, counter));
    total += seconds_since(t0);
    *cost += counter->end();
  }
  *seconds = total;
  return Status::Ok();
}

// The first `depth` positions of the test's sequence: random tokens, untimed, in batches of at
// most 512 tokens (a batch's activations grow with its size).
Status fill_context(const Model& model, ThreadPool& pool, int64_t depth, uint64_t seed, KvCache& cache, int32_t seq,
                    const BenchConfig& config) {
  if (depth == 0) return Status::Ok();
  const std::vector<int32_t> tokens = random_tokens(depth, model.config().vocab_size, seed);
  std::vector<float> logits;
  for (int64_t start = 0; start < depth; start += 512) {
    progress(config, str_format("context %lld/%lld", static_cast<long long>(start), static_cast<long long>(depth)));
    Batch batch;
    const int64_t end = std::min<int64_t>(depth, start + 512);
    for (int64_t i = start; i < end; ++i) batch.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), seq, i + 1 == end);
    MOEPP_RETURN_IF_ERROR(model.forward(pool, batch, cache, &logits));
  }
  progress_done(config);
  return Status::Ok();
}

// Weights plus a KV cache of n positions (keys and values of every layer, stored as the model's
// make_cache() stores them: f32, bf16 or q8).
double needed_bytes(const Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  const double row_bytes = KvCache(1, 1, c.head_dim, model.kv_storage()).row_bytes();
  return static_cast<double>(model.weight_bytes()) + 2.0 * row_bytes * static_cast<double>(c.n_layers * c.n_kv_heads * n);
}

Status run_tests(Model& model, const BenchModel& bm, const BenchConfig& config, const MachineTable& limits,
                 double zc_target, const RowSink& sink) {
  CostCounter counter(model);
  const WeightsRead weights_read(model);
  int64_t longest = 0;  // the longest context run so far: its KV cache counts as needed memory
  const bool has_zc = std::any_of(model.config().layers.begin(), model.config().layers.end(), [](const MoeLayerSpec& s) {
    return s.count(ExpertKind::kFfn) < s.n_experts();
  });
  for (int threads : config.threads) {
    ThreadPool pool(threads);
    struct Test {
      bool prompt;
      int64_t n, depth;
    };
    std::vector<Test> tests;
    for (int64_t d : config.depths) {
      for (int64_t p : config.prompt_lengths) tests.push_back({true, p, d});
      for (int64_t n : config.gen_lengths) tests.push_back({false, n, d});
    }
    for (const Test& test : tests) {
      BenchRow row;
      row.model = bm.label();
      row.weights = config.weights;
      row.kv_cache = kv_storage_name(model.kv_storage());
      row.kv_cache_chosen = config.load.kv_cache.has_value();
      row.layers = model.config().n_layers;
      row.full_layers = row.layers;
      if (!bm.shape.empty()) {
        auto full = shape_config(bm.shape, 0);
        if (full.ok()) row.full_layers = full->n_layers;
      }
      row.threads = threads;
      row.test = (test.prompt ? "pp" : "tg") + std::to_string(test.n);
      if (test.depth > 0) row.test += "@d" + std::to_string(test.depth);
      row.n_tokens = test.n;
      row.depth = test.depth;
      row.zc_target = zc_target;
      const std::vector<int32_t> tokens = random_tokens(test.n, model.config().vocab_size, config.seed + 7 * test.n + (test.prompt ? 1 : 2));
      if (zc_target >= 0) {
        progress(config, str_format("%s %s: calibrating routers for zc-share %.3g", row.model.c_str(), row.test.c_str(),
                                    zc_target));
        MOEPP_ASSIGN_OR_RETURN(ZcCalibration cal, calibrate_model_bias(pool, &model, zc_target, tokens));
        progress_done(config);
        // Whole-model calibration is approximate (layers interact); the row reports what was reached.
        if (std::fabs(cal.share - zc_target) > 0.05)
          std::fprintf(stderr, "moepp bench: %s %s: zc-share calibration reached %.3f for a target of %.3f\n",
                       row.model.c_str(), row.test.c_str(), cal.share, zc_target);
      }
      auto run = test.prompt ? time_prompt : time_generation;
      double s = 0;
      ForwardCost cost;
      // Warm-up: a short run of the same kind (page faults, thread wake-up, caches).
      const std::vector<int32_t> warm(tokens.begin(), tokens.begin() + std::min<int64_t>(test.n, test.prompt ? 16 : 2));
      // The cache is allocated before it is filled: refuse one that would not fit, not crash.
      const double kv_bytes = needed_bytes(model, test.depth + test.n) - static_cast<double>(model.weight_bytes());
      if (const int64_t have = available_memory_bytes(); have > 0 && kv_bytes > 0.9 * static_cast<double>(have))
        return Status::Error(str_format("%s: its KV cache needs about %.1f GiB, %.1f GiB available; use a smaller -d or -p/-n",
                                        row.test.c_str(), kv_bytes / (1 << 30), static_cast<double>(have) / (1 << 30)));
      KvCache cache = model.make_cache();
      const int32_t seq = cache.add_sequence();
      cache.reserve(seq, test.depth + test.n);  // allocated once: growing would copy the context
      cache.truncate(seq, 0);
      MOEPP_RETURN_IF_ERROR(fill_context(model, pool, test.depth, config.seed + 3 * test.depth, cache, seq, config));
      MOEPP_RETURN_IF_ERROR(run(model, pool, warm, test.depth, cache, seq, &counter, &s, &cost));
      std::vector<double> seconds, reads;
      for (int r = 0; r < config.repetitions; ++r) {
        progress(config, str_format("%s %s t=%d rep %d/%d", row.model.c_str(), row.test.c_str(), threads, r + 1,
                                    config.repetitions));
        MOEPP_RETURN_IF_ERROR(run(model, pool, tokens, test.depth, cache, seq, &counter, &s, &cost));
        seconds.push_back(s);
        if (weights_read.usable()) reads.push_back(weights_read.read_gb_s(pool));
      }
      progress_done(config);
      fill_rates(config, limits, seconds, cost, &row, reads);
      if (has_zc) row.zc_share = cost.zc_share();
      longest = std::max(longest, test.depth + test.n);
      if (const int64_t peak = peak_resident_bytes(); peak > 0) {
        row.peak_mem_gb = static_cast<double>(peak) / 1e9;
        row.needed_mem_gb = needed_bytes(model, longest) / 1e9;
        row.mem_overhead = row.peak_mem_gb / row.needed_mem_gb - 1.0;
      }
      sink(row);
    }
  }
  return Status::Ok();
}

}  // namespace

Status run_model_bench(const BenchModel& bm, const BenchConfig& config, const MachineTable& limits, const RowSink& sink) {
  if (config.repetitions < 1) return Status::Error("-r: expected at least 1 repetition");
  for (int64_t n : config.prompt_lengths)
    if (n < 1) return Status::Error("-p: expected positive prompt lengths, got " + std::to_string(n));
  for (int64_t n : config.gen_lengths)
    if (n < 1) return Status::Error("-n: expected positive generation lengths, got " + std::to_string(n));
  if (!config.zc_shares.empty() && bm.shape.empty())
    return Status::Error("--zc-share: only with --model-shape (it edits the random router weights)");
  // The rows' peak memory starts with this model's load, without the heap an earlier model freed.
  return_free_heap_to_system();
  reset_peak_resident_bytes();
  auto built = build_model(bm, config);
  if (!built.ok()) return built.status().with_context(bm.label());
  std::unique_ptr<Model> model = std::move(built).value();
  progress_done(config);
  if (config.zc_shares.empty()) return run_tests(*model, bm, config, limits, -1, sink);
  for (double share : config.zc_shares) MOEPP_RETURN_IF_ERROR(run_tests(*model, bm, config, limits, share, sink));
  return Status::Ok();
}

Status run_compare_vanilla(const std::string& shape, const BenchConfig& config, const MachineTable& limits,
                           const RowSink& sink) {
  if (config.repetitions < 1) return Status::Error("-r: expected at least 1 repetition");
  MOEPP_ASSIGN_OR_RETURN(std::string twin, vanilla_twin(shape));
  MOEPP_ASSIGN_OR_RETURN(ModelConfig c_pp, shape_config(shape, 1));
  MOEPP_ASSIGN_OR_RETURN(ModelConfig c_v, shape_config(twin, 1));
  // Both layers use the same attention-free, embedding-free part of the model: the MoE layer.
  // Shrinking the vocabulary keeps the throwaway embedding and lm_head small.
  c_pp.vocab_size = c_v.vocab_size = 16;
  progress(config, "building one MoE layer of " + shape + " and of " + twin);
  std::unique_ptr<Model> m_pp, m_v;
  {
    ThreadPool load_pool(ThreadPool::default_threads());  // prepares the weights; gone before the timing
    LoadOptions load = config.load;
    load.pool = &load_pool;
    MOEPP_ASSIGN_OR_RETURN(m_pp, Model::random(c_pp, config.seed, load));
    MOEPP_ASSIGN_OR_RETURN(m_v, Model::random(c_v, config.seed + 1, load));
  }
  progress_done(config);
  const MoeLayerSpec& spec_pp = c_pp.layers[0];
  const MoeLayerSpec& spec_v = c_v.layers[0];
  MoeLayerWeights& w_pp = m_pp->mutable_weights().layers[0].moe;
  const MoeLayerWeights& w_v = m_v->weights().layers[0].moe;
  const int64_t d = c_pp.d_model;
  const Precision prec = m_pp->precision();

  int64_t n_max = 1;
  for (int64_t n : config.prompt_lengths) n_max = std::max(n_max, n);
  for (int64_t n : config.gen_lengths) n_max = std::max(n_max, n);
  const std::vector<float> x_all = normed_hidden_states(n_max, d, config.seed + 6, prec);
  // A plain read of both layers' weights in the turns: the read the roofline divides by.
  WeightsRead weights_read(*m_pp);
  weights_read.add(*m_v);

  // One timed call sequence of a layer: pp = one call on n tokens, tg = n calls on one token.
  struct LayerRun {
    double seconds = 0;
    ForwardCost cost;
    std::vector<ForwardCost> kernels;  // every call's, for the roofline
  };
  auto run_layer = [&](ThreadPool& pool, const MoeLayerSpec& spec, const MoeLayerWeights& w, bool prompt, int64_t n) {
    const int64_t per_call = prompt ? n : 1;
    std::vector<float> x(x_all.begin(), x_all.begin() + n * d);
    std::vector<float> y(static_cast<size_t>(per_call * d));
    std::vector<float> raw(static_cast<size_t>(per_call * spec.n_experts()));
    RoutingPlan plan;
    LayerRun out;
    for (int64_t start = 0; start < n; start += per_call) {
      const auto t0 = Clock::now();
      moe_forward(pool, spec, w, x.data() + start * d, per_call, d, nullptr, raw.data(), &plan, y.data(), prec);
      out.seconds += seconds_since(t0);
      for (const ForwardCost& k : moe_layer_kernel_costs(spec, w, d, plan, false)) {
        out.cost += k;
        out.kernels.push_back(k);
      }
    }
    return out;
  };

  std::vector<double> shares = config.zc_shares;
  if (shares.empty()) shares = {0.1, 0.25, 0.5};
  for (double share : shares) {
    for (int threads : config.threads) {
      ThreadPool pool(threads);
      struct Test {
        bool prompt;
        int64_t n;
      };
      std::vector<Test> tests;
      for (int64_t p : config.prompt_lengths) tests.push_back({true, p});
      for (int64_t n : config.gen_lengths) tests.push_back({false, n});
      for (const Test& test : tests) {
        BenchRow row;
        row.model = shape + " vs " + twin;
        row.weights = config.weights;
        row.layers = 1;
        row.full_layers = c_pp.n_layers;
        row.threads = threads;
        row.test = std::string(test.prompt ? "moe_pp" : "moe_tg") + std::to_string(test.n);
        row.n_tokens = test.n;
        row.zc_target = share;
        row.compare = true;
        // The bias is calibrated on the test's own hidden states, so the share is the one asked for.
        MOEPP_ASSIGN_OR_RETURN(ZcCalibration cal, calibrate_layer_bias(pool, spec_pp, &w_pp, x_all.data(), test.n, d, share));
        (void)cal;
        run_layer(pool, spec_pp, w_pp, test.prompt, std::min<int64_t>(test.n, 4));  // warm-up
        run_layer(pool, spec_v, w_v, test.prompt, std::min<int64_t>(test.n, 4));
        std::vector<double> s_pp, s_v, reads;
        LayerRun r_pp, r_v;
        // Alternate the two layers so drift in machine load hits both alike.
        for (int r = 0; r < config.repetitions; ++r) {
          progress(config, str_format("%s %s zc-share %.3g t=%d rep %d/%d", row.model.c_str(), row.test.c_str(), share,
                                      threads, r + 1, config.repetitions));
          r_pp = run_layer(pool, spec_pp, w_pp, test.prompt, test.n);
          r_v = run_layer(pool, spec_v, w_v, test.prompt, test.n);
          s_pp.push_back(r_pp.seconds);
          s_v.push_back(r_v.seconds);
          if (weights_read.usable()) reads.push_back(weights_read.read_gb_s(pool));
        }
        progress_done(config);
        fill_rates(config, limits, s_pp, r_pp.cost, &row, reads);
        row.zc_share = r_pp.cost.zc_share();
        row.tok_s_vanilla = static_cast<double>(test.n) / median(s_v);
        row.expert_speedup = median(s_v) / median(s_pp);
        row.ffn_work_ratio = r_pp.cost.ffn_slots > 0
                                 ? static_cast<double>(r_v.cost.ffn_slots) / static_cast<double>(r_pp.cost.ffn_slots)
                                 : 0.0;
        const double read = std::max(row.read_gb_s, row.limit_gb_s);
        const double roof_pp = roofline_seconds(r_pp.kernels, read, row.limit_gflop_s);
        const double roof_v = roofline_seconds(r_v.kernels, read, row.limit_gflop_s);
        if (roof_pp > 0) {
          row.roofline_speedup = roof_v / roof_pp;
          row.roofline_share = roof_pp / median(s_pp);
          row.roofline_share_vanilla = roof_v / median(s_v);
        }
        sink(row);
      }
    }
  }
  return Status::Ok();
}

}  // namespace moepp
