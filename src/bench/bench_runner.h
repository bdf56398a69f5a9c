// The pp/tg benchmark matrix (modelled on llama-bench) and the MoE++ vs vanilla expert-layer
// comparison. Rows stream to a callback as they are measured.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench/machine.h"
#include "models/model.h"

namespace moepp {

struct BenchConfig {
  std::vector<int> threads = {1};
  std::vector<int64_t> prompt_lengths = {128};  // one "pp<N>" test each
  std::vector<int64_t> gen_lengths = {32};      // one "tg<N>" test each
  std::vector<int64_t> depths = {0};            // context each test starts from ("tg<N>@d<D>" where D > 0)
  int repetitions = 3;
  std::string weights = "bf16";  // name printed in rows
  LoadOptions load;              // how weights are stored for compute
  std::vector<double> zc_shares;  // MoE++ only; empty: routers as built. Calibrated per test on its tokens
  int64_t max_layers = 0;         // 0: all layers of the shape
  uint64_t seed = 1234;
  bool progress = false;          // progress lines on stderr
};

struct BenchRow {
  std::string model;
  std::string weights;
  std::string kv_cache;     // the KV cache's storage: "f32", "bf16" or "q8"
  bool kv_cache_chosen = false;  // set by --kv-cache (the markdown shows it beside the weights)
  int64_t layers = 0;       // layers run
  int64_t full_layers = 0;  // layers of the shape or checkpoint
  int threads = 1;
  std::string test;         // "pp512", "tg128", "tg128@d2048", "moe_pp512", "moe_tg128"
  int64_t n_tokens = 0;
  int64_t depth = 0;        // positions already in the KV cache when the test starts
  int repetitions = 0;
  double tok_s = 0, tok_s_min = 0, tok_s_max = 0;  // median and range over repetitions
  double gb_s = 0, bw_share = 0;        // bytes read / time; share of the measured read bandwidth:
                                        // read_gb_s where measured, else the machine's limit_gb_s
  double read_gb_s = 0;                 // a plain read of the model's weights between repetitions
                                        // (bench/weights_read.h), best pass; 0: not measured
  double machine_bw_share = 0;          // gb_s / limit_gb_s
  double gflop_s = 0, flop_share = 0;   // FLOPs / time; share of the measured peak named below
  std::string peak;                     // "fp32", "bf16" or "int8": which measured peak flop_share uses
  double limit_gb_s = 0;                // the measured limits the shares refer to
  double limit_gflop_s = 0;
  double zc_share = -1;                 // measured share of slots on zero-computation experts; -1: none
  double zc_target = -1;                // --zc-share asked for; -1: not biased
  // Memory (model rows; 0 where not measured): the peak resident size since the model was built
  // (load included), and what the model needs: its weights plus the largest KV cache of the tests
  // run so far. mem_overhead = peak / needed - 1.
  double peak_mem_gb = 0, needed_mem_gb = 0, mem_overhead = 0;
  // --compare-vanilla only:
  bool compare = false;
  double tok_s_vanilla = 0;
  double expert_speedup = 0;   // vanilla MoE layer time / MoE++ MoE layer time (medians)
  double ffn_work_ratio = 0;   // FFN slots of the vanilla layer / FFN slots of the MoE++ layer
  // The speed-up if both layers ran at the machine's limits (roofline_seconds of their kernels at
  // the best read measured, read_gb_s or limit_gb_s, and limit_gflop_s): where experts with few
  // tokens are bound by their read, below ffn_work_ratio. 0: no limits measured. The shares:
  // each layer's roofline time / its median time (expert_speedup / roofline_speedup is their ratio).
  double roofline_speedup = 0;
  double roofline_share = 0, roofline_share_vanilla = 0;
};

using RowSink = std::function<void(const BenchRow&)>;
using MachineTable = std::map<int, MachineLimits>;  // by thread count

// A model to benchmark: a named shape (random weights) or a checkpoint directory.
struct BenchModel {
  std::string shape;  // set for --model-shape
  std::string dir;    // set for -m
  std::string label() const { return shape.empty() ? dir : shape; }
};

// Loads the checkpoint or builds the named shape with random weights (checking memory first).
Result<std::unique_ptr<Model>> build_model(const BenchModel& model, const BenchConfig& config);

// Runs pp and tg over the thread matrix (and every --zc-share value) for one model.
Status run_model_bench(const BenchModel& model, const BenchConfig& config, const MachineTable& limits, const RowSink& sink);

// Times one MoE layer of an MoE++ shape and of its vanilla twin on the same random hidden
// states, for every --zc-share value (default 0.1, 0.25, 0.5), as pp (one batch) and tg (one
// token per call). This is the paper's "expert forward time": router + experts + combine.
Status run_compare_vanilla(const std::string& shape, const BenchConfig& config, const MachineTable& limits,
                           const RowSink& sink);

}  // namespace moepp
