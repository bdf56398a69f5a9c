// Markdown / CSV / JSON formatting of machine limits and benchmark rows.
#include "bench/report.h"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "ops/dot_kernels.h"

namespace moepp {
namespace {

// The streams per thread each one-token kernel of the active set walks (0: one fixed order).
std::vector<std::pair<const char*, int>> one_token_stream_counts() {
  using kernels::StreamKernel;
  return {{"bf16", kernels::active_one_token_streams(StreamKernel::kBf16)},
          {"q8", kernels::active_one_token_streams(StreamKernel::kQ8)},
          {"q4", kernels::active_one_token_streams(StreamKernel::kQ4)}};
}

nlohmann::ordered_json machine_json(const MachineLimits& m) {
  nlohmann::ordered_json j;
  j["threads"] = m.threads;
  j["read_gb_s"] = m.read_gb_s;
  j["fp32_gflop_s"] = m.fp32_gflop_s;
  j["bf16_gflop_s"] = m.bf16_gflop_s;
  j["int8_gop_s"] = m.int8_gop_s;
  j["bf16_native"] = m.bf16_native;
  j["fp32_isa"] = m.fp32_isa;
  j["bf16_isa"] = m.bf16_isa;
  j["int8_isa"] = m.int8_isa;
  j["cpu_features"] = cpu_feature_string();
  j["kernels"] = kernels::active_kernels().isa;  // the matmul kernel set the model rows run on
  nlohmann::ordered_json streams;  // per thread and kernel; 0: one fixed order
  for (const auto& [name, count] : one_token_stream_counts()) streams[name] = count;
  j["one_token_streams"] = streams;
  return j;
}

nlohmann::ordered_json to_json(const BenchRow& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["test"] = r.test;
  j["weights"] = r.weights;
  if (!r.kv_cache.empty()) j["kv_cache"] = r.kv_cache;
  j["threads"] = r.threads;
  j["layers"] = r.layers;
  j["full_layers"] = r.full_layers;
  j["n_tokens"] = r.n_tokens;
  j["depth"] = r.depth;
  j["repetitions"] = r.repetitions;
  j["tok_s"] = r.tok_s;
  j["tok_s_min"] = r.tok_s_min;
  j["tok_s_max"] = r.tok_s_max;
  j["gb_s"] = r.gb_s;
  j["bw_share"] = r.bw_share;
  j["gflop_s"] = r.gflop_s;
  j["flop_share"] = r.flop_share;
  j["peak"] = r.peak;
  j["machine_read_gb_s"] = r.limit_gb_s;
  j["machine_bw_share"] = r.machine_bw_share;
  j["read_gb_s"] = r.read_gb_s;  // 0: not measured, bw_share is machine_bw_share
  j["machine_peak_gflop_s"] = r.limit_gflop_s;
  if (r.zc_share >= 0) j["zc_share"] = r.zc_share;
  if (r.zc_target >= 0) j["zc_target"] = r.zc_target;
  if (r.peak_mem_gb > 0) {
    j["peak_mem_gb"] = r.peak_mem_gb;
    j["needed_mem_gb"] = r.needed_mem_gb;
    j["mem_overhead"] = r.mem_overhead;
  }
  if (r.compare) {
    j["tok_s_vanilla"] = r.tok_s_vanilla;
    j["expert_speedup"] = r.expert_speedup;
    j["ffn_work_ratio"] = r.ffn_work_ratio;
    j["roofline_speedup"] = r.roofline_speedup;
    j["roofline_share"] = r.roofline_share;
    j["roofline_share_vanilla"] = r.roofline_share_vanilla;
  }
  return j;
}

std::string layers_text(const BenchRow& r) {
  return r.layers == r.full_layers ? std::to_string(r.layers)
                                   : std::to_string(r.layers) + "/" + std::to_string(r.full_layers);
}

std::string tok_s_text(const BenchRow& r) {
  return str_format("%.2f ± %.2f", r.tok_s, 0.5 * (r.tok_s_max - r.tok_s_min));
}

// The read bw_share divides by: the one beside the row, else the machine's (marked).
std::string read_text(const BenchRow& r) {
  return r.read_gb_s > 0 ? str_format("%.2f", r.read_gb_s) : str_format("%.2f (machine)", r.limit_gb_s);
}

std::string share_text(double v) { return v < 0 ? "-" : str_format("%.3f", v); }

}  // namespace

void print_machine(std::FILE* out, ReportFormat format, const std::vector<MachineLimits>& limits) {
  switch (format) {
    case ReportFormat::kJson:
      for (const MachineLimits& m : limits) std::fprintf(out, "%s\n", machine_json(m).dump().c_str());
      break;
    case ReportFormat::kCsv:
      std::fprintf(out, "threads,read_gb_s,fp32_gflop_s,bf16_gflop_s,int8_gop_s,bf16_native,fp32_isa,bf16_isa,int8_isa\n");
      for (const MachineLimits& m : limits)
        std::fprintf(out, "%d,%.3f,%.2f,%.2f,%.2f,%d,\"%s\",\"%s\",\"%s\"\n", m.threads, m.read_gb_s, m.fp32_gflop_s,
                     m.bf16_gflop_s, m.int8_gop_s, m.bf16_native ? 1 : 0, m.fp32_isa.c_str(), m.bf16_isa.c_str(),
                     m.int8_isa.c_str());
      break;
    case ReportFormat::kMarkdown: {
      std::string streams;
      for (const auto& [name, count] : one_token_stream_counts())
        if (count > 0) streams += std::string(streams.empty() ? "" : ", ") + name + " " + std::to_string(count);
      if (!streams.empty()) streams = " (one-token streams: " + streams + ")";
      std::fprintf(out, "CPU features: %s; matmul kernels: %s%s\n\n", cpu_feature_string().c_str(),
                   kernels::active_kernels().isa, streams.c_str());
      std::fprintf(out, "| threads | read GB/s | fp32 GFLOP/s | bf16 GFLOP/s | int8 GOP/s |\n");
      std::fprintf(out, "|--------:|----------:|-------------:|-------------:|-----------:|\n");
      for (const MachineLimits& m : limits)
        std::fprintf(out, "| %d | %.2f | %.1f | %.1f | %.1f |\n", m.threads, m.read_gb_s, m.fp32_gflop_s, m.bf16_gflop_s,
                     m.int8_gop_s);
      if (!limits.empty()) {
        const MachineLimits& m = limits.front();
        std::fprintf(out, "\nfp32: %s; bf16: %s; int8: %s\n", m.fp32_isa.c_str(), m.bf16_isa.c_str(), m.int8_isa.c_str());
      }
      std::fprintf(out, "\n");
      break;
    }
  }
  std::fflush(out);
}

std::string row_json(const BenchRow& row) { return to_json(row).dump(); }

void RowPrinter::print(const BenchRow& r) {
  switch (format_) {
    case ReportFormat::kJson:
      std::fprintf(out_, "%s\n", row_json(r).c_str());
      break;
    case ReportFormat::kCsv: {
      const nlohmann::ordered_json j = to_json(r);
      if (!header_done_) {
        std::string h;
        for (const auto& [k, v] : j.items()) {
          if (!h.empty()) h += ',';
          h += k;
        }
        std::fprintf(out_, "%s\n", h.c_str());
        header_done_ = true;
      }
      std::string line;
      for (const auto& [k, v] : j.items()) {
        if (!line.empty()) line += ',';
        line += v.dump();
      }
      std::fprintf(out_, "%s\n", line.c_str());
      break;
    }
    case ReportFormat::kMarkdown:
      if (r.compare) {
        if (!header_done_) {
          std::fprintf(out_, "| model | weights | threads | test | zc_share | t/s MoE++ | t/s vanilla | expert_speedup | "
                             "ffn_work_ratio | speedup / ratio | roofline_speedup | roofline share MoE++ / vanilla | GB/s | read GB/s | "
                             "bw_share | GFLOP/s | flop_share |\n");
          std::fprintf(out_, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
          header_done_ = true;
        }
        std::fprintf(out_, "| %s | %s | %d | %s | %.3f | %s | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f / %.3f | %.2f | %s | %.3f | %.2f | %.3f |\n",
                     r.model.c_str(), r.weights.c_str(), r.threads, r.test.c_str(), r.zc_share, tok_s_text(r).c_str(),
                     r.tok_s_vanilla, r.expert_speedup, r.ffn_work_ratio,
                     r.ffn_work_ratio > 0 ? r.expert_speedup / r.ffn_work_ratio : 0.0, r.roofline_speedup,
                     r.roofline_share, r.roofline_share_vanilla, r.gb_s, read_text(r).c_str(),
                     r.bw_share, r.gflop_s, r.flop_share);
      } else {
        if (!header_done_) {
          std::fprintf(out_, "| model | weights | layers | threads | test | t/s | GB/s | read GB/s | bw_share | GFLOP/s | "
                             "flop_share | zc_share | peak mem GB | over weights+KV |\n");
          std::fprintf(out_, "|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
          header_done_ = true;
        }
        const std::string mem = r.peak_mem_gb > 0 ? str_format("%.3f | %+.1f%%", r.peak_mem_gb, 100 * r.mem_overhead)
                                                  : std::string("- | -");
        const std::string weights = r.kv_cache_chosen ? r.weights + ", kv " + r.kv_cache : r.weights;
        std::fprintf(out_, "| %s | %s | %s | %d | %s | %s | %.2f | %s | %.3f | %.2f | %.3f (%s) | %s | %s |\n", r.model.c_str(),
                     weights.c_str(), layers_text(r).c_str(), r.threads, r.test.c_str(), tok_s_text(r).c_str(), r.gb_s,
                     read_text(r).c_str(), r.bw_share, r.gflop_s, r.flop_share, r.peak.c_str(), share_text(r.zc_share).c_str(), mem.c_str());
      }
      break;
  }
  std::fflush(out_);
}

}  // namespace moepp
