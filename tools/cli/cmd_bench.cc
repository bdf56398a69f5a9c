// `moepp bench`: prompt processing (pp) and generation (tg) throughput over a matrix of threads
// and lengths, reported against the machine's measured limits (like llama-bench, plus GB/s and
// GFLOP/s shares); `--machine` prints those limits; `--compare-vanilla` measures MoE++'s
// expert-layer speed-up over its vanilla twin.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_runner.h"
#include "bench/chart_svg.h"
#include "bench/machine.h"
#include "bench/moe_layer_time.h"
#include "bench/report.h"
#include "bench/shapes.h"
#include "bench/attention_probe.h"
#include "bench/stream_probe.h"
#include "runtime/speculative.h"
#include "platform/durable_file.h"
#include "server/concurrency_bench.h"
#include "cli_common.h"
#include "generation_flags.h"
#include "commands.h"
#include "generation_flags.h"

namespace moepp::cli {
namespace {

struct BenchOptions {
  bool machine = false;
  std::string model_dir;
  std::string shapes;
  std::string threads;
  std::string prompts = "128";
  std::string gens = "32";
  std::string depths = "0";
  int repetitions = 3;
  std::string weights = "bf16";
  std::string kv_cache;     // --kv-cache: the model rows' KV cache storage ("": the compute dtype's)
  std::string zc_share;
  bool compare_vanilla = false;
  int64_t layers = 0;
  bool json = false, csv = false;
  std::string svg;          // --svg FILE: the pp/tg and --compare-vanilla rows as a chart
  int64_t read_mib = 1024;
  uint64_t seed = 1234;
  std::string concurrency;  // "1,2,4,8,16": serving throughput instead of the pp/tg matrix
  std::string draft;        // speculative decoding: a draft model directory, "self", "zc" or "ngram"
  std::string draft_ns = "2,3,4,5,6,7,8";
  int draft_top_k = 1;
  std::string moe_time;     // "DIR,DIR": expert-layer throughput of trained checkpoints on -f text
  std::string text_file;
  bool stream = false;                 // one-token kernels against a plain read of the same memory
  std::string stream_shape = "2816x1024";
  int stream_calls = 400;
  int64_t stream_task_rows = 0;
  std::string stream_counts;           // --streams: one-token stream counts to compare ("": each format's own)
  bool batch_kernels = false;          // every SIMD set's batch kernels side by side on cold weights
  int batch_calls = 40;
  bool attention = false;              // one decode step's attention against a plain read of the cache
  std::string attention_shape = "4x4x64";
  std::string caches = "bf16,f32";
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// "1,2" -> {1, 2}; zeros are dropped when allow_zero (llama-bench: -p 0 skips the pp tests).
// Zeros are allowed with allow_zero and then dropped ("-n 0": no tg test), unless keep_zero.
Result<std::vector<int64_t>> parse_counts(const std::string& text, const char* flag, bool allow_zero,
                                          bool keep_zero = false) {
  std::vector<int64_t> out;
  for (const std::string& item : split(text)) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || (v == 0 && !allow_zero) || v > (1 << 20))
      return Status::Error(std::string(flag) + ": expected comma-separated " + (allow_zero ? "non-negative" : "positive") +
                           " integers, got '" + item + "'");
    if (v > 0 || keep_zero) out.push_back(v);
  }
  return out;
}

Result<std::vector<double>> parse_shares(const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split(text)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v >= 0.0 && v <= 1.0))
      return Status::Error("--zc-share: expected comma-separated shares in [0, 1], got '" + item + "'");
    out.push_back(v);
  }
  return out;
}

Status apply_weights(const std::string& name, LoadOptions* load) {
  if (name == "f32") {
    load->dtype = ComputeDType::kF32;
  } else if (name == "bf16") {
    load->dtype = ComputeDType::kBF16;
  } else if (name == "q8" || name == "q4") {
    load->dtype = ComputeDType::kBF16;
    load->expert_quant = load->rest_quant = name == "q8" ? WeightQuant::kQ8 : WeightQuant::kQ4;
  } else {
    return Status::Error("--weights: expected f32, bf16, q8 or q4, got '" + name + "'");
  }
  return Status::Ok();
}

// --concurrency: N streams at once through the server's batching engine, per model.
int run_concurrency(const BenchOptions& o, const BenchConfig& config, const std::vector<BenchModel>& models,
                    ReportFormat format) {
  auto streams = parse_counts(o.concurrency, "--concurrency", false);
  if (!streams.ok()) return fail(streams.status());
  const int64_t n_prompt = config.prompt_lengths.empty() ? 128 : config.prompt_lengths[0];
  const int64_t n_gen = config.gen_lengths.empty() ? 32 : config.gen_lengths[0];
  if (n_prompt < 1 || n_gen < 1) return fail(Status::Error("--concurrency: expected -p and -n of at least 1"));
  if (format == ReportFormat::kCsv) std::printf("model,weights,threads,streams,prompt,gen,agg_tok_s,decode_tok_s,stream_tok_s,ttft_mean_ms,ttft_max_ms\n");
  if (format == ReportFormat::kMarkdown)
    std::printf("| model | weights | threads | streams | prompt | gen | aggregate tok/s | decode tok/s | per-stream tok/s | TTFT mean ms | TTFT max ms |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const BenchModel& bm : models) {
    auto model = build_model(bm, config);
    if (!model.ok()) return fail(model.status());
    ThreadPool pool(config.threads[0]);
    Status st = server::run_concurrency_bench(**model, pool, *streams, n_prompt, n_gen, config.seed, [&](const server::ConcurrencyRow& r) {
      const char* name = bm.label().c_str();
      if (format == ReportFormat::kJson) {
        nlohmann::json j = {{"test", str_format("serve_pp%lld_tg%lld", static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.gen_tokens))},
                            {"model", bm.label()}, {"weights", config.weights}, {"threads", config.threads[0]},
                            {"streams", r.streams}, {"agg_tok_s", r.agg_tok_s}, {"decode_tok_s", r.decode_tok_s}, {"stream_tok_s", r.stream_tok_s},
                            {"ttft_mean_ms", r.ttft_mean_ms}, {"ttft_max_ms", r.ttft_max_ms}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf(format == ReportFormat::kCsv ? "%s,%s,%d,%d,%lld,%lld,%.2f,%.2f,%.2f,%.1f,%.1f\n"
                                                 : "| %s | %s | %d | %d | %lld | %lld | %.2f | %.2f | %.2f | %.1f | %.1f |\n",
                    name, config.weights.c_str(), config.threads[0], r.streams, static_cast<long long>(r.prompt_tokens),
                    static_cast<long long>(r.gen_tokens), r.agg_tok_s, r.decode_tok_s, r.stream_tok_s, r.ttft_mean_ms, r.ttft_max_ms);
      }
      std::fflush(stdout);
    });
    if (!st.ok()) return fail(st);
  }
  return 0;
}

// The token ids of a text file, encoded with the tokenizer of model directory `dir`.
Result<std::vector<int32_t>> text_file_ids(const std::string& path, const std::string& dir) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (dir.empty()) return Status::Error("-f: needs a model directory (-m) with a tokenizer");
  auto tok = load_tokenizer(dir);
  if (!tok.ok()) return tok.status().with_context("-f needs the model's tokenizer");
  return (*tok)->encode(ss.str(), EncodeOptions{});
}

// --moe-time: every MoE layer of each checkpoint timed on the inputs it gets from real text
// (the first -p tokens of -f), side by side; ratios are to the first model.
int run_moe_time(const BenchOptions& o, const BenchConfig& config, ReportFormat format) {
  if (o.text_file.empty()) return fail(Status::Error("--moe-time: give the text with -f FILE"));
  const int64_t want = config.prompt_lengths.empty() ? 256 : config.prompt_lengths.front();
  if (format == ReportFormat::kMarkdown)
    std::printf("| model | threads | tokens | MoE layers | zc share | FFN experts/token/layer | MoE pp tok/s | MoE tg tok/s | pp vs first | tg vs first |\n"
                "|---|---|---|---|---|---|---|---|---|---|\n");
  if (format == ReportFormat::kCsv)
    std::printf("model,threads,tokens,moe_layers,zc_share,ffn_per_token_layer,pp_tok_s,tg_tok_s,pp_ratio,tg_ratio\n");
  std::map<int, MoeLayerTiming> first;  // by thread count
  for (const std::string& dir : split(o.moe_time)) {
    auto model = [&] {
      ThreadPool load_pool(ThreadPool::default_threads());  // prepares the weights; gone before the timing
      LoadOptions load = config.load;
      load.pool = &load_pool;
      return Model::load(dir, load);
    }();
    if (!model.ok()) return fail(model.status());
    auto text_ids = text_file_ids(o.text_file, dir);
    if (!text_ids.ok()) return fail(text_ids.status());
    std::vector<int32_t> ids = std::move(text_ids).value();
    int64_t n = want;
    if ((*model)->config().max_position_embeddings > 0) n = std::min(n, (*model)->config().max_position_embeddings);
    if (static_cast<int64_t>(ids.size()) < n)
      return fail(Status::Error(str_format("%s: %zu tokens, fewer than the %lld asked for with -p", o.text_file.c_str(),
                                           ids.size(), (long long)n)));
    ids.resize(static_cast<size_t>(n));
    for (int threads : config.threads) {
      auto t = time_moe_layers(**model, dir, ids, threads, config.repetitions);
      if (!t.ok()) return fail(t.status());
      if (!first.count(threads)) first[threads] = *t;
      const double pp_ratio = t->pp_tok_s / first[threads].pp_tok_s, tg_ratio = t->tg_tok_s / first[threads].tg_tok_s;
      if (format == ReportFormat::kJson) {
        nlohmann::json j = {{"test", "moe_time"}, {"model", dir}, {"threads", threads}, {"tokens", t->n_tokens},
                            {"moe_layers", t->n_layers}, {"zc_share", t->zc_share},
                            {"ffn_per_token_layer", t->ffn_slots_per_token}, {"pp_tok_s", t->pp_tok_s},
                            {"tg_tok_s", t->tg_tok_s}, {"pp_ratio", pp_ratio}, {"tg_ratio", tg_ratio}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf(format == ReportFormat::kCsv ? "%s,%d,%lld,%lld,%.4f,%.4f,%.1f,%.1f,%.3f,%.3f\n"
                                                 : "| %s | %d | %lld | %lld | %.3f | %.3f | %.1f | %.1f | %.2fx | %.2fx |\n",
                    dir.c_str(), threads, (long long)t->n_tokens, (long long)t->n_layers, t->zc_share,
                    t->ffn_slots_per_token, t->pp_tok_s, t->tg_tok_s, pp_ratio, tg_ratio);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

// --draft: speculative decoding against plain greedy decoding of the same prompt, per K.
int run_draft_bench(const BenchOptions& o, const BenchConfig& config, const std::vector<BenchModel>& models,
                    ReportFormat format) {
  auto ks = parse_counts(o.draft_ns, "--draft-n", false);
  if (!ks.ok()) return fail(ks.status());
  const int64_t n_prompt = config.prompt_lengths.empty() ? 128 : config.prompt_lengths[0];
  const int64_t n_gen = config.gen_lengths.empty() ? 32 : config.gen_lengths[0];
  if (n_prompt < 1 || n_gen < 2) return fail(Status::Error("--draft: expected -p >= 1 and -n >= 2"));
  if (format == ReportFormat::kCsv) std::printf("model,draft,threads,k,prompt,gen,accepted_per_step,implied_hit_rate,acceptance,tok_s,plain_tok_s,speedup\n");
  if (format == ReportFormat::kMarkdown)
    std::printf("| model | draft | threads | K | prompt | gen | N accepted/step | implied p | acceptance | tok/s | plain tok/s | speed-up |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const BenchModel& bm : models) {
    auto model = build_model(bm, config);
    if (!model.ok()) return fail(model.status());
    const Model& target = **model;
    ThreadPool pool(config.threads[0]);
    std::unique_ptr<Model> draft_model;
    DraftFlags flags;
    flags.draft = o.draft;
    flags.draft_top_k = o.draft_top_k;
    auto make_drafter = flags.factory(target, nullptr, config.load, pool, SamplingParams{}, &draft_model);
    if (!make_drafter.ok()) return fail(make_drafter.status());
    // Prompts: -f text cut into 4 windows of -p tokens (real text, what drafts are for), or else
    // one random prompt that repeats itself, so that prompt lookup has something to find.
    std::vector<std::vector<int32_t>> prompts;
    if (!o.text_file.empty()) {
      auto ids = text_file_ids(o.text_file, bm.dir);
      if (!ids.ok()) return fail(ids.status());
      const int64_t windows = 4, stride = static_cast<int64_t>(ids->size()) / windows;
      if (stride < n_prompt)
        return fail(Status::Error(str_format("%s: too short for %lld prompts of %lld tokens", o.text_file.c_str(),
                                             (long long)windows, (long long)n_prompt)));
      for (int64_t w = 0; w < windows; ++w)
        prompts.emplace_back(ids->begin() + w * stride, ids->begin() + w * stride + n_prompt);
    } else {
      std::vector<int32_t> prompt;
      std::mt19937_64 rng(config.seed);
      std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(target.config().vocab_size - 1));
      for (int64_t i = 0; i < n_prompt; ++i)
        prompt.push_back(i < (n_prompt + 1) / 2 ? token(rng) : prompt[static_cast<size_t>(i - (n_prompt + 1) / 2)]);
      prompts.push_back(prompt);
    }
    GenerateOptions g;
    g.max_new_tokens = n_gen;
    g.stop_at_eos = false;
    std::vector<std::vector<int32_t>> base;
    double plain_seconds = 0;
    int64_t plain_tokens = 0;
    for (const auto& prompt : prompts) {
      GenerateStats plain;
      auto out = generate(pool, target, prompt, g, [](int32_t) { return true; }, &plain);
      if (!out.ok()) return fail(out.status());
      base.push_back(*out);
      plain_seconds += plain.generate_seconds;
      plain_tokens += plain.generated_tokens - 1;
    }
    const double plain_tok_s = plain_seconds > 0 ? plain_tokens / plain_seconds : 0;
    for (int64_t k : *ks) {
      SpeculativeStats st;  // summed over the prompts
      std::string name;
      for (size_t i = 0; i < prompts.size(); ++i) {
        std::unique_ptr<Drafter> drafter = (*make_drafter)();
        name = drafter->name();
        SpeculativeOptions spec;
        spec.draft_n = static_cast<int>(k);
        spec.max_draft_n = std::max<int>(8, static_cast<int>(k));
        spec.adaptive = false;
        SpeculativeStats one;
        auto out = generate_speculative(pool, target, *drafter, prompts[i], g, spec, [](int32_t) { return true; }, &one);
        if (!out.ok()) return fail(out.status());
        if (*out != base[i]) return fail(Status::Error("--draft: speculative output differs from plain greedy decoding (a bug)"));
        st.verify_steps += one.verify_steps;
        st.drafted += one.drafted;
        st.accepted += one.accepted;
        st.generated += one.generated - 1;  // the first token comes from the prompt pass
        st.seconds += one.seconds;
      }
      ++st.generated;
      const double tok_s = st.seconds > 0 ? (st.generated - 1) / st.seconds : 0;
      const double speedup = plain_tok_s > 0 ? tok_s / plain_tok_s : 0;
      if (format == ReportFormat::kJson) {
        nlohmann::json j = {{"test", "draft_tg" + std::to_string(n_gen)}, {"model", bm.label()}, {"draft", name},
                            {"threads", config.threads[0]}, {"k", k}, {"accepted_per_step", st.accepted_per_step()},
                            {"implied_hit_rate", st.implied_hit_rate()}, {"acceptance_rate", st.acceptance_rate()},
                            {"tok_s", tok_s}, {"plain_tok_s", plain_tok_s}, {"speedup", speedup}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf(format == ReportFormat::kCsv ? "%s,%s,%d,%lld,%lld,%lld,%.3f,%.3f,%.3f,%.2f,%.2f,%.3f\n"
                                                 : "| %s | %s | %d | %lld | %lld | %lld | %.2f | %.3f | %.1f%% | %.2f | %.2f | %.2fx |\n",
                    bm.label().c_str(), name.c_str(), config.threads[0], static_cast<long long>(k), static_cast<long long>(n_prompt),
                    static_cast<long long>(n_gen), st.accepted_per_step(), st.implied_hit_rate(),
                    format == ReportFormat::kCsv ? st.acceptance_rate() : 100 * st.acceptance_rate(), tok_s, plain_tok_s, speedup);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

// --attention: one decode step's attention over a deep cache against a plain read of it.
int run_attention(const BenchOptions& o, const std::vector<int64_t>& depths, const std::vector<int>& thread_counts,
                  ReportFormat format) {
  AttentionProbeOptions ao;
  long long kv_heads = 0, group = 0, head_dim = 0;
  char tail = 0;
  if (std::sscanf(o.attention_shape.c_str(), "%lldx%lldx%lld%c", &kv_heads, &group, &head_dim, &tail) != 3)
    return fail(Status::Error("--attention-shape: expected KV_HEADSxGROUPxHEAD_DIM (e.g. 4x4x64), got '" +
                              o.attention_shape + "'"));
  ao.kv_heads = kv_heads;
  ao.group = group;
  ao.head_dim = head_dim;
  ao.seed = o.seed;
  for (const std::string& c : split(o.caches))  // before the header, so a bad list prints only the error
    if (c != "bf16" && c != "f32" && c != "q8") return fail(Status::Error("--cache: expected bf16, f32 or q8, got '" + c + "'"));
  if (format == ReportFormat::kMarkdown)
    std::printf("| cache | depth | threads | kv heads x group x head_dim | layer MiB | copies | us / layer | kernel GB/s | read GB/s | kernel / read |\n"
                "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|\n");
  if (format == ReportFormat::kCsv)
    std::printf("cache,depth,threads,kv_heads,group,head_dim,layer_bytes,copies,us_per_layer,kernel_gb_s,read_gb_s,ratio\n");
  for (int threads : thread_counts)
  for (int64_t depth : depths) {
    ao.threads = threads;
    ao.depth = depth;
    auto rows = probe_decode_attention(split(o.caches), ao);
    if (!rows.ok()) return fail(rows.status());
    for (const AttentionProbeRow& r : *rows) {
      const double ratio = r.read_gb_s > 0 ? r.kernel_gb_s / r.read_gb_s : 0;
      if (format == ReportFormat::kJson) {
        nlohmann::json j = {{"test", "attention"}, {"cache", r.cache}, {"depth", depth}, {"threads", threads},
                            {"kv_heads", kv_heads}, {"group", group}, {"head_dim", head_dim},
                            {"layer_bytes", r.layer_bytes}, {"copies", r.copies}, {"us_per_layer", r.us_per_layer},
                            {"kernel_gb_s", r.kernel_gb_s}, {"read_gb_s", r.read_gb_s}, {"ratio", ratio}};
        std::printf("%s\n", j.dump().c_str());
      } else if (format == ReportFormat::kCsv) {
        std::printf("%s,%lld,%d,%lld,%lld,%lld,%lld,%d,%.2f,%.2f,%.2f,%.3f\n", r.cache.c_str(), static_cast<long long>(depth),
                    threads, kv_heads, group, head_dim, static_cast<long long>(r.layer_bytes), r.copies, r.us_per_layer,
                    r.kernel_gb_s, r.read_gb_s, ratio);
      } else {
        std::printf("| %s | %lld | %d | %lld x %lld x %lld | %.2f | %d | %.1f | %.2f | %.2f | %.3f |\n", r.cache.c_str(),
                    static_cast<long long>(depth), threads, kv_heads, group, head_dim, r.layer_bytes / 1048576.0, r.copies,
                    r.us_per_layer, r.kernel_gb_s, r.read_gb_s, ratio);
      }
    }
  }
  return 0;
}

// --stream-shape ROWSxCOLS (the probe checks the range).
Status parse_stream_shape(const std::string& text, int64_t* rows, int64_t* cols) {
  long long r = 0, c = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%lldx%lld%c", &r, &c, &tail) != 2)
    return Status::Error("--stream-shape: expected ROWSxCOLS (e.g. 2816x1024), got '" + text + "'");
  *rows = r;
  *cols = c;
  return Status::Ok();
}

// --stream: the one-token kernels' stream against a plain read, on huge and on small pages.
int run_stream(const BenchOptions& o, const std::vector<std::string>& formats, int threads, ReportFormat format) {
  StreamProbeOptions so;
  if (Status s = parse_stream_shape(o.stream_shape, &so.rows, &so.cols); !s.ok()) return fail(s);
  so.calls = o.stream_calls;
  so.task_rows = o.stream_task_rows;
  so.threads = threads;
  so.seed = o.seed;
  if (!o.stream_counts.empty()) {
    auto counts = parse_counts(o.stream_counts, "--streams", false);
    if (!counts.ok()) return fail(counts.status());
    for (int64_t c : *counts) so.streams.push_back(static_cast<int>(c));
  }
  auto rows_out = probe_one_token_stream(formats, so);
  if (!rows_out.ok()) return fail(rows_out.status());
  if (format == ReportFormat::kMarkdown)
    std::printf("| weights | pages | threads | streams | matrix | MiB | copies | kernel GB/s | read GB/s | kernel / read |\n"
                "|---|---|--:|--:|---|--:|--:|--:|--:|--:|\n");
  if (format == ReportFormat::kCsv)
    std::printf("weights,pages,threads,streams,rows,cols,matrix_bytes,copies,kernel_gb_s,read_gb_s,ratio\n");
  for (const StreamProbeRow& r : *rows_out) {
    const double ratio = r.read_gb_s > 0 ? r.kernel_gb_s / r.read_gb_s : 0;
    if (format == ReportFormat::kJson) {
      nlohmann::json j = {{"test", "stream"}, {"weights", r.weights}, {"pages", r.pages}, {"threads", threads},
                          {"streams", r.streams}, {"rows", r.rows}, {"cols", r.cols}, {"matrix_bytes", r.matrix_bytes},
                          {"copies", r.copies}, {"kernel_gb_s", r.kernel_gb_s}, {"read_gb_s", r.read_gb_s}, {"ratio", ratio}};
      std::printf("%s\n", j.dump().c_str());
    } else if (format == ReportFormat::kCsv) {
      std::printf("%s,%s,%d,%d,%lld,%lld,%lld,%d,%.2f,%.2f,%.3f\n", r.weights.c_str(), r.pages.c_str(), threads, r.streams,
                  static_cast<long long>(r.rows), static_cast<long long>(r.cols), static_cast<long long>(r.matrix_bytes),
                  r.copies, r.kernel_gb_s, r.read_gb_s, ratio);
    } else {
      std::printf("| %s | %s | %d | %d | %lld x %lld | %.2f | %d | %.2f | %.2f | %.3f |\n", r.weights.c_str(), r.pages.c_str(),
                  threads, r.streams, static_cast<long long>(r.rows), static_cast<long long>(r.cols),
                  r.matrix_bytes / 1048576.0, r.copies, r.kernel_gb_s, r.read_gb_s, ratio);
    }
  }
  return 0;
}

// --batch-kernels: every SIMD set's batch kernels on cold weights, taking turns.
int run_batch_kernels(const BenchOptions& o, const std::vector<std::string>& formats, const std::vector<int64_t>& tokens,
                      ReportFormat format) {
  BatchProbeOptions bo;
  if (Status s = parse_stream_shape(o.stream_shape, &bo.rows, &bo.cols); !s.ok()) return fail(s);
  bo.calls = o.batch_calls;
  bo.tokens = tokens;
  bo.seed = o.seed;
  auto rows_out = probe_batch_kernels(formats, bo);
  if (!rows_out.ok()) return fail(rows_out.status());
  if (format == ReportFormat::kMarkdown)
    std::printf("| weights | tokens | kernels | matrix | GFLOP/s | GB/s | read GB/s | kernel / read | GFLOP/s cached | overlap |\n"
                "|---|--:|---|---|--:|--:|--:|--:|--:|--:|\n");
  if (format == ReportFormat::kCsv)
    std::printf("weights,tokens,kernels,rows,cols,gflop_s,gb_s,read_gb_s,ratio,cached_gflop_s,overlap\n");
  for (const BatchProbeRow& r : *rows_out) {
    const double ratio = r.read_gb_s > 0 ? r.gb_s / r.read_gb_s : 0;
    if (format == ReportFormat::kJson) {
      nlohmann::json j = {{"test", "batch_kernels"}, {"weights", r.weights}, {"tokens", r.tokens},
                          {"kernels", r.kernels},    {"rows", r.rows},       {"cols", r.cols},
                          {"gflop_s", r.gflop_s},    {"gb_s", r.gb_s},       {"read_gb_s", r.read_gb_s},
                          {"ratio", ratio},          {"cached_gflop_s", r.cached_gflop_s}, {"overlap", r.overlap}};
      std::printf("%s\n", j.dump().c_str());
    } else if (format == ReportFormat::kCsv) {
      std::printf("%s,%lld,%s,%lld,%lld,%.2f,%.2f,%.2f,%.3f,%.2f,%.3f\n", r.weights.c_str(),
                  static_cast<long long>(r.tokens), r.kernels.c_str(), static_cast<long long>(r.rows),
                  static_cast<long long>(r.cols), r.gflop_s, r.gb_s, r.read_gb_s, ratio, r.cached_gflop_s, r.overlap);
    } else {
      std::printf("| %s | %lld | %s | %lld x %lld | %.1f | %.2f | %.2f | %.3f | %.1f | %.2f |\n", r.weights.c_str(),
                  static_cast<long long>(r.tokens), r.kernels.c_str(), static_cast<long long>(r.rows),
                  static_cast<long long>(r.cols), r.gflop_s, r.gb_s, r.read_gb_s, ratio, r.cached_gflop_s, r.overlap);
    }
  }
  return 0;
}

int run_bench(const BenchOptions& o) {
  const ReportFormat format = o.json ? ReportFormat::kJson : o.csv ? ReportFormat::kCsv : ReportFormat::kMarkdown;
  if (o.json && o.csv) return fail(Status::Error("--json and --csv: choose one output format"));
  BenchConfig config;
  config.progress = isatty(fileno(stderr)) != 0;
  config.repetitions = o.repetitions;
  config.seed = o.seed;
  const std::vector<std::string> weight_formats = split(o.weights);
  if (weight_formats.empty()) return fail(Status::Error("--weights: expected f32, bf16, q8 or q4, got ''"));
  config.weights = weight_formats[0];
  if (o.repetitions < 1) return fail(Status::Error("-r: expected at least 1 repetition, got " + std::to_string(o.repetitions)));
  if (o.layers < 0) return fail(Status::Error("--layers: expected a positive number of layers, got " + std::to_string(o.layers)));
  config.max_layers = o.layers;
  for (const std::string& w : weight_formats) {
    LoadOptions check;
    if (Status s = apply_weights(w, &check); !s.ok()) return fail(s);
  }
  if (Status s = apply_weights(config.weights, &config.load); !s.ok()) return fail(s);
  auto kv_cache = parse_kv_cache(o.kv_cache);
  if (!kv_cache.ok()) return fail(kv_cache.status());
  config.load.kv_cache = *kv_cache;
  if (o.threads.empty()) {
    config.threads = {ThreadPool::default_threads()};
  } else {
    auto t = parse_counts(o.threads, "-t", false);
    if (!t.ok()) return fail(t.status());
    config.threads.clear();
    for (int64_t v : *t) {
      if (v > kMaxThreads)
        return fail(Status::Error(str_format("-t: expected 1 to %d threads, got %lld", kMaxThreads, static_cast<long long>(v))));
      config.threads.push_back(static_cast<int>(v));
    }
  }
  auto prompts = parse_counts(o.prompts, "-p", true);
  if (!prompts.ok()) return fail(prompts.status());
  auto gens = parse_counts(o.gens, "-n", true);
  if (!gens.ok()) return fail(gens.status());
  auto depths = parse_counts(o.depths, "-d", true, true);
  if (!depths.ok()) return fail(depths.status());
  config.prompt_lengths = *prompts;
  config.gen_lengths = *gens;
  config.depths = *depths;
  if (!o.zc_share.empty()) {
    auto shares = parse_shares(o.zc_share);
    if (!shares.ok()) return fail(shares.status());
    config.zc_shares = *shares;
  }
  const char* other_mode = o.stream ? "--stream" : o.batch_kernels ? "--batch-kernels" : o.attention ? "--attention"
                           : !o.moe_time.empty() ? "--moe-time" : !o.draft.empty() ? "--draft"
                           : !o.concurrency.empty() ? "--concurrency" : nullptr;
  if (!o.svg.empty() && other_mode != nullptr)
    return fail(Status::Error(std::string("--svg: charts the pp/tg and --compare-vanilla rows, not ") + other_mode));
  if (o.stream) return run_stream(o, weight_formats, o.threads.empty() ? 1 : config.threads[0], format);
  if (o.batch_kernels) {
    auto tokens = parse_counts(o.prompts, "-p", true, true);  // zeros kept, so the probe refuses them
    if (!tokens.ok()) return fail(tokens.status());
    return run_batch_kernels(o, weight_formats, *tokens, format);
  }
  if (o.attention) {
    std::vector<int64_t> attention_depths = config.depths;  // -d left at its default 0: 2048
    attention_depths.erase(std::remove(attention_depths.begin(), attention_depths.end(), 0), attention_depths.end());
    if (attention_depths.empty()) attention_depths = {2048};
    return run_attention(o, attention_depths, o.threads.empty() ? std::vector<int>{1} : config.threads, format);
  }
  std::vector<std::string> shapes;
  if (!o.shapes.empty()) shapes = split(o.shapes);
  for (const std::string& s : shapes) {
    auto c = shape_config(s, 0);
    if (!c.ok()) return fail(c.status());
  }
  if (o.compare_vanilla && shapes.empty()) shapes = {"moepp-1b"};
  const bool has_models = !shapes.empty() || !o.model_dir.empty();
  if (!has_models && !o.machine && o.moe_time.empty())
    return fail(Status::Error("bench: nothing to run, expected --machine, -m DIR or --model-shape NAME (see --help)"));
  if (o.compare_vanilla && !o.model_dir.empty())
    return fail(Status::Error("--compare-vanilla: works on --model-shape MoE++ shapes, not on -m"));
  if (o.read_mib < 16) return fail(Status::Error("--read-mib: expected at least 16"));
  if (!o.svg.empty() && !has_models)
    return fail(Status::Error("--svg: nothing to chart, expected -m DIR, --model-shape NAME or --compare-vanilla"));
  if (!o.svg.empty() && config.prompt_lengths.empty() && config.gen_lengths.empty())
    return fail(Status::Error("--svg: no rows to chart (every -p and -n is 0)"));
  ReplacingFile chart;  // opened now, so a bad path fails before the runs, written after them
  if (!o.svg.empty()) {
    if (Status s = chart.open(o.svg); !s.ok()) return fail(s);
  }
  std::vector<BenchModel> models;
  if (!o.model_dir.empty()) models.push_back(BenchModel{"", o.model_dir});
  for (const std::string& s : shapes) models.push_back(BenchModel{s, ""});
  if (!o.moe_time.empty()) return run_moe_time(o, config, format);
  if (!o.draft.empty() || !o.concurrency.empty()) {
    if (!has_models) return fail(Status::Error("--draft / --concurrency: expected -m DIR or --model-shape NAME"));
    return o.draft.empty() ? run_concurrency(o, config, models, format) : run_draft_bench(o, config, models, format);
  }

  // Machine limits for every thread count of the matrix.
  MachineTable limits;
  std::vector<MachineLimits> limit_list;
  for (int t : config.threads) {
    if (limits.count(t)) continue;
    if (config.progress) std::fprintf(stderr, "\r\033[Kmoepp bench: measuring machine limits with %d thread(s)", t);
    MachineOptions mo;
    mo.threads = t;
    mo.read_bytes = o.read_mib << 20;
    limits[t] = measure_machine(mo);
    limit_list.push_back(limits[t]);
  }
  if (config.progress) std::fprintf(stderr, "\r\033[K");
  if (o.machine || format == ReportFormat::kMarkdown) print_machine(stdout, format, limit_list);
  if (!has_models) return 0;
  if (format == ReportFormat::kMarkdown && o.layers > 0)
    std::printf("Layers capped at %lld by --layers (layers column: run/full); rates are for the truncated model.\n\n",
                static_cast<long long>(o.layers));

  RowPrinter printer(stdout, format);
  std::vector<BenchRow> charted;
  auto sink = [&](const BenchRow& row) {
    printer.print(row);
    if (!o.svg.empty()) charted.push_back(row);
  };
  for (const std::string& w : weight_formats) {  // the matrix: formats x models x threads x lengths
    config.weights = w;
    config.load = LoadOptions{};
    if (Status s = apply_weights(w, &config.load); !s.ok()) return fail(s);
    config.load.kv_cache = *kv_cache;
    for (const std::string& s : o.compare_vanilla ? shapes : std::vector<std::string>{}) {
      Status st = run_compare_vanilla(s, config, limits, sink);
      if (!st.ok()) return fail(st);
    }
    if (o.compare_vanilla) continue;
    for (const BenchModel& m : models) {
      Status st = run_model_bench(m, config, limits, sink);
      if (!st.ok()) return fail(st);
    }
  }
  if (!o.svg.empty()) {
    // Refused above; were there no rows, the old file would stay (the partial one goes with `chart`).
    if (charted.empty()) return fail(Status::Error("--svg: no rows to chart"));
    const std::string svg = bench_chart_svg(charted);
    const bool written = std::fwrite(svg.data(), 1, svg.size(), chart.get()) == svg.size();
    if (Status s = chart.commit(written); !s.ok()) return fail(s);
  }
  return 0;
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "Benchmark prompt processing (pp) and generation (tg) against the machine's measured limits, like llama-bench");
  sub->footer(
      "Each row reports tokens/s (median ± half the range over -r repetitions), GB/s of weights actually read "
      "(attention, norms, router, only the FFN experts selected, embedding rows, lm_head, KV cache) and its share of "
      "the measured read bandwidth (bw_share), GFLOP/s (2 x parameters used per token + attention) and its share of "
      "the measured fp32 peak, for bf16 weights of the bf16 peak where the CPU has AVX512_BF16 and it is the higher, "
      "for q8/q4 experts of the int8 peak (flop_share; the peak column names which).\n"
      "Examples:\n"
      "  moepp bench --machine\n"
      "  moepp bench --stream --weights bf16,q8,q4\n"
      "  moepp bench --batch-kernels --weights bf16 -p 8,16,48,128 --stream-shape 2048x768\n"
      "  moepp bench --attention -d 512,2048,8192 -t 2\n"
      "  moepp bench --model-shape mixtral-1.8b,moepp-1b -t 1,2 -p 128 -n 32 --layers 4\n"
      "  moepp bench --model-shape moepp-1b --compare-vanilla --zc-share 0.1,0.25,0.5 --json\n"
      "  moepp bench --model-shape moepp-1b --compare-vanilla --zc-share 0.1,0.25,0.5,0.75 --svg speedup.svg");
  CLI::Option* machine = sub->add_flag("--machine", o->machine,
                "Measure and print the machine's limits: read_gb_s (multi-threaded streaming read of --read-mib MiB), "
                "fp32_gflop_s (FMA), bf16_gflop_s (vdpbf16ps, or emulated bf16->f32 + FMA on CPUs without "
                "AVX512_BF16), int8_gop_s (vpdpbusd, or AVX2 vpmaddubsw+vpmaddwd). Alone, runs nothing else");
  CLI::Option* stream = sub->add_flag("--stream", o->stream,
                "Measure the one-token matrix-vector kernels of each --weights format against a plain read of the "
                "same memory (kernel / read), on huge pages (as weights are stored) and on small pages: cold copies of "
                "one random matrix, the variants taking turns call by call; -t N (the first value; default 1) "
                "shares each call between N pool threads as decode does. Alone, runs nothing else");
  sub->add_option("--stream-shape", o->stream_shape, "--stream and --batch-kernels: the matrix as ROWSxCOLS (default 2816x1024)");
  sub->add_option("--stream-calls", o->stream_calls, "--stream: calls per variant (default 400)");
  sub->add_option("--stream-task-rows", o->stream_task_rows,
                  "--stream: run the kernel over tasks of this many rows, pulled by the threads from a counter as "
                  "decode's (expert, row block) tasks are (default 0: one block per thread)");
  sub->add_option("--streams", o->stream_counts,
                  "--stream: compare the one-token kernels walking each thread's rows as 1, 2 or 4 memory streams "
                  "(comma-separated, e.g. 1,2,4; default: the count each format's kernel walks, MOEPP_STREAMS or its CPU "
                  "default). Same bits whatever the count; the best depends on the CPU's prefetchers");
  CLI::Option* batch_kernels = sub->add_flag("--batch-kernels", o->batch_kernels,
                "Measure the batch kernels (-p tokens against one matrix, as a prefill's projections and an expert's "
                "tokens) of every SIMD kernel set this CPU has, side by side: cold copies of one random --stream-shape "
                "matrix per --weights format, bf16-valued inputs, 128-row tasks on one thread, the sets taking turns "
                "call by call with a plain read of the same copies; GFLOP/s, GB/s of the stored matrix, the read's GB/s "
                "and kernel / read; then GFLOP/s with each task's rows in cache (the arithmetic alone) and the overlap: "
                "the share of the shorter of the two (arithmetic, read) that the cold call hides under the longer (1 "
                "all, 0 none: the two add up). "
                "Alone, runs nothing else");
  sub->add_option("--batch-calls", o->batch_calls, "--batch-kernels: calls per set (and by the read) and token count (default 40)");
  CLI::Option* attention = sub->add_flag("--attention", o->attention,
                "Measure one decode step's attention (the engine's per-kv-head step: q.k, softmax, times V) over a "
                "cache of -d positions (default 2048) against a plain read of the same keys and values, for each "
                "--cache type: cold copies of one layer's cache, the two taking turns call by call; -t N ("
                "comma-separated; default 1) shares each layer's kv heads between N pool threads as decode does. "
                "Alone, runs nothing else");
  // The probes each run alone: a second one named with them would be silently skipped.
  const std::vector<CLI::Option*> probes = {machine, stream, batch_kernels, attention};
  for (CLI::Option* a : probes)
    for (CLI::Option* b : probes)
      if (a != b) a->excludes(b);
  sub->add_option("--attention-shape", o->attention_shape,
                  "--attention: KV_HEADSxGROUPxHEAD_DIM, kv heads per layer, query heads per kv head and head size "
                  "(default 4x4x64, mixtral-1.8b's)");
  sub->add_option("--kv-cache", o->kv_cache,
                  "KV cache storage of the model rows: auto (the compute dtype's: f32, or bf16 for bf16/q8/q4 rows), "
                  "f32, bf16 or q8 (int8 with a scale per 32 values)");
  sub->add_option("--cache", o->caches, "--attention: comma-separated KV cache types: bf16, f32, q8 (default bf16,f32)");
  sub->add_option("-m,--model", o->model_dir, "Model directory (a checkpoint) to benchmark");
  sub->add_option("--model-shape", o->shapes,
                  "Comma-separated named shapes built with random weights: moepp-0.6b, moepp-1b, moepp-2b, moepp-7b, "
                  "moe-0.6b, moe-1b, moe-2b, moe-7b (paper Table 2 MoE++ models and vanilla twins), mixtral-1.8b");
  sub->add_option("-t,--threads", o->threads, "Comma-separated thread counts (default: physical cores)");
  sub->add_option("-p,--n-prompt", o->prompts,
                  "Comma-separated prompt lengths; each is a ppN test: N random tokens as one batch (0: no pp test). "
                  "With --batch-kernels: the tokens of a call")
      ->capture_default_str();
  sub->add_option("-n,--n-gen", o->gens,
                  "Comma-separated generation lengths; each is a tgN test: N one-token decode steps from an empty KV "
                  "cache (0: no tg test)")
      ->capture_default_str();
  sub->add_option("-d,--depth", o->depths,
                  "Comma-separated context depths: each pp and tg test runs after D random tokens already in the KV "
                  "cache (prefilled, untimed) and is named ppN@dD / tgN@dD, as llama-bench's -d")
      ->capture_default_str();
  sub->add_option("-r,--repetitions", o->repetitions, "Timed repetitions per test, after one warm-up")->capture_default_str();
  sub->add_option("--weights", o->weights,
                  "Comma-separated weight formats: bf16 (2 bytes/weight), f32, q8 or q4 (group-quantised experts and attention/lm_head)")
      ->capture_default_str();
  sub->add_option("--zc-share", o->zc_share,
                  "Comma-separated target shares of routing slots sent to zero-computation experts (MoE++ shapes only): "
                  "the routers are biased through a constant hidden feature and the bias found by bisection; rows "
                  "report the measured zc_share. With --compare-vanilla the default is 0.1,0.25,0.5");
  sub->add_flag("--compare-vanilla", o->compare_vanilla,
                "Time one MoE layer (router + experts + combine: the paper's expert forward time) of each MoE++ "
                "shape and of its vanilla twin on the same random hidden states; rows add zc_share, expert_speedup "
                "(vanilla time / MoE++ time), ffn_work_ratio (vanilla FFN slots / MoE++ FFN slots), "
                "roofline_speedup (the speed-up if both layers ran at the machine's limits: each kernel, the router "
                "and every expert, the slower of its read and its arithmetic) and each layer's roofline_share. "
                "Default shape moepp-1b");
  sub->add_option("--layers", o->layers,
                  "Keep only the first N layers of a --model-shape (quick runs; the output says so)");
  sub->add_option("--concurrency", o->concurrency,
                  "Serving benchmark: comma-separated numbers of concurrent streams (e.g. 1,2,4,8,16) through the "
                  "server's batching engine; -p/-n give each stream's prompt and generation length");
  sub->add_option("--draft", o->draft,
                  "Speculative decoding benchmark: a draft model directory, 'self' (the target with --draft-top-k "
                  "experts), 'zc' (the target routed to zero-computation experts only) or 'ngram'; reports N, implied p and the speed-up over plain greedy decoding per K");
  sub->add_option("--draft-n", o->draft_ns, "With --draft: comma-separated K values")->capture_default_str();
  sub->add_option("--draft-top-k", o->draft_top_k, "With --draft self: experts per token of the draft")->capture_default_str();
  sub->add_option("--moe-time", o->moe_time,
                  "Comma-separated model directories: time every MoE layer (router + experts + combine) of each on "
                  "the inputs it gets from the first -p tokens of the -f text, as one batch and one token per call; "
                  "ratios to the first model (e.g. a trained MoE++ model and its vanilla twin)");
  sub->add_option("-f,--file", o->text_file,
                  "With --moe-time: the text to run; with --draft: prompts from this text (4 windows of -p tokens)");
  sub->add_flag("--json", o->json, "One JSON object per line (per row; with --machine, per thread count)");
  sub->add_flag("--csv", o->csv, "CSV with a header line");
  sub->add_option("--svg", o->svg,
                  "Also write the rows as an SVG chart to this file: --compare-vanilla rows as the expert speed-up "
                  "against the zero-computation share, beside the FFN-work ratio and the roofline's speed-up; pp/tg rows "
                  "as bars of their share of the machine's read (tg) or arithmetic peak (pp)")
      ->check([](const std::string& path) { return path.empty() ? std::string("expected a file name") : std::string(); });
  sub->add_option("--read-mib", o->read_mib, "Buffer size of the bandwidth measurement in MiB")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the random weights, prompts and hidden states")->capture_default_str();
  return [o] { return run_bench(*o); };
}

}  // namespace moepp::cli

namespace moepp::cli {
MOEPP_REGISTER_COMMAND(80, add_bench_command);
}  // namespace moepp::cli
