// `moepp bench --machine`: the machine's own limits, measured, so every benchmark row can be
// reported as a share of them: sustained read bandwidth and peak fp32 / bf16 / int8 dot rates.
#pragma once

#include <cstdint>
#include <string>

namespace moepp {

struct MachineLimits {
  int threads = 1;
  double read_gb_s = 0;     // streaming read over a buffer much larger than the caches
  double fp32_gflop_s = 0;  // FMA chains in registers, 2 flops per lane
  double bf16_gflop_s = 0;  // vdpbf16ps where present, else bf16->f32 conversion + fp32 FMA
  double int8_gop_s = 0;    // vpdpbusd where present, else vpmaddubsw + vpmaddwd + vpaddd
  bool bf16_native = false;  // AVX512_BF16 measured (else the emulated rate)
  std::string fp32_isa, bf16_isa, int8_isa;  // what was measured, e.g. "avx2+fma"
};

struct MachineOptions {
  int threads = 1;
  int64_t read_bytes = int64_t{1} << 30;  // 1 GiB: far beyond any L3 of the target machines
  int repetitions = 5;                    // best of N for each limit
  double compute_seconds = 0.1;           // target duration of one FMA/dot measurement
};

// CPU features relevant to the kernels, e.g. "avx2 fma" or "avx2 fma avx512f avx512_bf16 avx512_vnni".
std::string cpu_feature_string();

// Peak fp32 FMA rate alone (GFLOP/s) with options.threads threads; *isa names the instructions.
double measure_fp32_gflop_s(const MachineOptions& options, std::string* isa);

// A plain streaming read of n bytes at p as two streams side by side, read_stream_distance(n)
// apart, then the tail (the fastest plain read on the project's machines; any alignment; a tail
// under 128 bytes is skipped), the kernel behind read_gb_s; returns a sum so the reads are kept.
uint64_t read_memory(const uint8_t* p, size_t n);

// Where read_memory's second stream starts: about n / 2 in whole 128-byte steps, and from 8 KiB on
// an odd number of 4 KiB pages (machine.cc says why).
size_t read_stream_distance(size_t n);

// Runs the measurements with `threads` threads (each pinned to nothing: the OS schedules).
MachineLimits measure_machine(const MachineOptions& options);

}  // namespace moepp
