// Machine limits: a multi-threaded streaming read for bandwidth, and tight loops of independent
// dot-product chains for the arithmetic peaks. Kernels are compiled per ISA with GCC target
// attributes and chosen at run time with __builtin_cpu_supports, so the binary runs on any
// x86-64 and measures AVX-512 (BF16, VNNI) where the CPU has it.
#include "bench/machine.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "tensor/weight.h"

namespace moepp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Keeps the compiler from treating `v` as loop-invariant (no instruction is emitted).
#define MOEPP_OPAQUE(v) asm volatile("" : "+x"(v))

bool has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512f() { return __builtin_cpu_supports("avx512f"); }
bool has_avx512_bf16() { return has_avx512f() && __builtin_cpu_supports("avx512bf16"); }
bool has_avx512_vnni() { return has_avx512f() && __builtin_cpu_supports("avx512vnni"); }
bool has_avx_vnni() { return __builtin_cpu_supports("avxvnni"); }

// ---- fp32 FMA: independent accumulator chains, enough to cover FMA latency x FMA ports. ----

__attribute__((target("avx512f"))) float fp32_avx512(int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j) * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  float out[16], sum = 0;
  _mm512_storeu_ps(out, s);
  for (float v : out) sum += v;
  return sum;
}
constexpr double kFp32Avx512Flops = 16 * 16 * 2;

__attribute__((target("avx2,fma"))) float fp32_avx2(int64_t iters) {
  __m256 acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j) * 1e-3f);
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], b, c);
  float out[8], s = 0;
  for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  _mm256_storeu_ps(out, acc[0]);
  for (float v : out) s += v;
  return s;
}
constexpr double kFp32Avx2Flops = 12 * 8 * 2;

float fp32_scalar(int64_t iters) {
  float acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = static_cast<float>(j) * 1e-3f;
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = acc[j] * 0.999f + 1e-3f;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}
constexpr double kFp32ScalarFlops = 16 * 2;

// ---- bf16 dot products. ----

__attribute__((target("avx512f,avx512bf16"))) float bf16_avx512(int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps();
  // 1.0 and 2^-20 as bf16 pairs: the accumulators grow slowly and stay finite.
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x35803580);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  float out[16], sum = 0;
  _mm512_storeu_ps(out, s);
  for (float v : out) sum += v;
  return sum;
}
constexpr double kBf16Avx512Flops = 16 * 16 * 2 * 2;  // chains x lanes x pairs x (mul+add)

// Emulated: 16 bf16 weights per register widened to two f32 vectors (shift, mask), two FMAs.
// The weight register is made opaque each iteration so the widening is really executed, as it
// is in a kernel that streams bf16 weights.
__attribute__((target("avx2,fma"))) float bf16_emulated_avx2(int64_t iters) {
  __m256 acc[8];
  __m256i w[4];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) w[j] = _mm256_set1_epi32(0x3f803f80 + j);
  const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const __m256 x = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < 4; ++j) {
      MOEPP_OPAQUE(w[j]);
      const __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(w[j], 16));
      const __m256 hi = _mm256_castsi256_ps(_mm256_and_si256(w[j], hi_mask));
      acc[2 * j] = _mm256_fmadd_ps(lo, x, acc[2 * j]);
      acc[2 * j + 1] = _mm256_fmadd_ps(hi, x, acc[2 * j + 1]);
    }
  }
  for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  float out[8], s = 0;
  _mm256_storeu_ps(out, acc[0]);
  for (float v : out) s += v;
  return s;
}
constexpr double kBf16EmulatedAvx2Flops = 4 * 16 * 2;

float bf16_emulated_scalar(int64_t iters) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t w = 0x3f803f80u;
  for (int64_t i = 0; i < iters; ++i) {
    asm volatile("" : "+r"(w));
#pragma GCC unroll 16
    for (int j = 0; j < 4; ++j) {
      const uint32_t lo = (w + j) << 16, hi = (w + j) & 0xffff0000u;
      float flo, fhi;
      std::memcpy(&flo, &lo, 4);
      std::memcpy(&fhi, &hi, 4);
      acc[2 * j] += flo * 1e-6f;
      acc[2 * j + 1] += fhi * 1e-6f;
    }
  }
  float s = 0;
  for (float v : acc) s += v;
  return s;
}
constexpr double kBf16EmulatedScalarFlops = 8 * 2;

// ---- int8 dot products (u8 x s8 -> s32), 2 ops per multiply-add. ----

__attribute__((target("avx512f,avx512vnni"))) float int8_avx512_vnni(int64_t iters) {
  __m512i acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_si512();
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  __m512i s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_epi32(s, acc[j]);
  int32_t out[16], sum = 0;
  _mm512_storeu_si512(out, s);
  for (int32_t v : out) sum += v;
  return static_cast<float>(sum);
}
constexpr double kInt8Avx512VnniOps = 16 * 64 * 2;

__attribute__((target("avx2,avxvnni"))) float int8_avx_vnni(int64_t iters) {
  __m256i acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_setzero_si256();
  const __m256i a = _mm256_set1_epi8(1), b = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_dpbusd_avx_epi32(acc[j], a, b);
  for (int j = 1; j < 12; ++j) acc[0] = _mm256_add_epi32(acc[0], acc[j]);
  return static_cast<float>(_mm256_extract_epi32(acc[0], 0));
}
constexpr double kInt8AvxVnniOps = 12 * 32 * 2;

__attribute__((target("avx2"))) float int8_avx2(int64_t iters) {
  __m256i acc[8], a[8];
  for (int j = 0; j < 8; ++j) {
    acc[j] = _mm256_setzero_si256();
    a[j] = _mm256_set1_epi8(static_cast<char>(1 + j));
  }
  const __m256i b = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) {
      MOEPP_OPAQUE(a[j]);
      const __m256i pairs = _mm256_maddubs_epi16(a[j], b);  // 32 products -> 16 s16
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(pairs, ones));
    }
  }
  for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_epi32(acc[0], acc[j]);
  return static_cast<float>(_mm256_extract_epi32(acc[0], 0));
}
constexpr double kInt8Avx2Ops = 8 * 32 * 2;

float int8_scalar(int64_t iters) {
  int32_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint8_t a = 1;
  for (int64_t i = 0; i < iters; ++i) {
    asm volatile("" : "+r"(a));
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) acc[j] += static_cast<int32_t>(a) * static_cast<int8_t>(j);
  }
  int32_t s = 0;
  for (int32_t v : acc) s += v;
  return static_cast<float>(s);
}
constexpr double kInt8ScalarOps = 8 * 2;

}  // namespace

// ---- streaming read ----

// From 8 KiB on an odd number of 4 KiB pages: streams a large power of two apart contend in the
// memory's address mapping, and the 1 GiB probe's halves, 512 MiB apart, read at 22 GB/s on one
// thread of the session-30 Zen 4 against 32-33 for 1000 MiB (a temporary harness: two streams
// 256 MiB apart 18-22 GB/s; 256 MiB + 4 KiB, and 64 KiB to 8 MiB apart, 22-29.5 alike).
size_t read_stream_distance(size_t n) {
  constexpr size_t kPage = 4096;
  size_t pages = n / 2 / kPage;
  if (pages == 0) return n / 256 * 128;
  if (pages % 2 == 0) --pages;
  return pages * kPage;
}

namespace {

// Two streams, [p, p + d) and [p + d, p + 2d) side by side (d = read_stream_distance(n)), then the
// tail, as the one-token kernels read a thread's rows: on this project's AVX-512 machine one
// thread's kernels stream faster from two places than from one, so a one-stream read would
// understate what the memory gives.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  const size_t half = read_stream_distance(n);
  const uint8_t* q = p + half;
  for (size_t i = 0; i < half; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 96)));
  }
  // The tail past both streams (under 16 KiB) in 128-byte steps, as one stream.
  for (size_t i = 2 * half; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), a0);
  return out[0] + out[1] + out[2] + out[3];
}

uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t acc[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n / 128 * 16; i += 4)  // the bytes read_avx2 reads: whole 128s
    for (int j = 0; j < 4; ++j) {
      uint64_t word;  // memcpy: p may be unaligned
      std::memcpy(&word, p + (i + j) * 8, sizeof word);
      acc[j] += word;
    }
  return acc[0] + acc[1] + acc[2] + acc[3];
}

// Runs fn(thread) on `threads` threads at once and returns the wall time.
double run_parallel(int threads, const std::function<void(int)>& fn) {
  std::vector<std::thread> workers;
  const auto t0 = Clock::now();
  for (int t = 1; t < threads; ++t) workers.emplace_back(fn, t);
  fn(0);
  for (auto& w : workers) w.join();
  return seconds_since(t0);
}

volatile float g_sink = 0;  // results of the compute loops, so they are not optimised away

// Best rate (ops per second) of a compute kernel over all threads.
double measure_compute(const MachineOptions& o, float (*kernel)(int64_t), double ops_per_iter) {
  // Calibrate the iteration count on one thread so that a run takes about compute_seconds.
  int64_t iters = 1000;
  for (;;) {
    const auto t0 = Clock::now();
    g_sink = g_sink + kernel(iters);
    const double s = seconds_since(t0);
    if (s > 0.01 || iters > (int64_t{1} << 40)) {
      iters = std::max<int64_t>(1000, static_cast<int64_t>(iters * o.compute_seconds / std::max(s, 1e-9)));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  std::vector<float> sinks(static_cast<size_t>(o.threads));
  for (int r = 0; r < o.repetitions; ++r) {
    const double s = run_parallel(o.threads, [&](int t) { sinks[t] = kernel(iters); });
    for (float v : sinks) g_sink = g_sink + v;
    best = std::max(best, ops_per_iter * static_cast<double>(iters) * o.threads / s);
  }
  return best;
}

double measure_read(const MachineOptions& o) {
  const size_t chunk = 4096;
  const size_t n = (static_cast<size_t>(std::max<int64_t>(o.read_bytes, 1 << 20)) / (chunk * o.threads)) * chunk * o.threads;
  // Allocated like weights (huge-page advice included), so the limit is what weights can get.
  const std::shared_ptr<void> buf = allocate_aligned(n);
  if (!buf) return 0;
  const size_t per_thread = n / o.threads;
  uint8_t* base = static_cast<uint8_t*>(buf.get());
  // First touch by the thread that reads the slice (page placement on NUMA machines).
  run_parallel(o.threads, [&](int t) { std::memset(base + t * per_thread, 1 + t, per_thread); });
  const bool avx2 = has_avx2_fma();
  std::vector<uint64_t> sums(static_cast<size_t>(o.threads));
  double best = 0;
  for (int r = 0; r < o.repetitions + 1; ++r) {  // the first pass is a warm-up
    const double s = run_parallel(o.threads, [&](int t) {
      const uint8_t* p = base + t * per_thread;
      sums[t] = avx2 ? read_avx2(p, per_thread) : read_scalar(p, per_thread);
    });
    for (uint64_t v : sums) g_sink = g_sink + static_cast<float>(v & 1);
    if (r > 0) best = std::max(best, static_cast<double>(n) / s);
  }
  return best;
}

}  // namespace

uint64_t read_memory(const uint8_t* p, size_t n) { return has_avx2_fma() ? read_avx2(p, n) : read_scalar(p, n); }

std::string cpu_feature_string() {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  add(has_avx_vnni(), "avx_vnni");
  add(has_avx512f(), "avx512f");
  add(has_avx512_bf16(), "avx512_bf16");
  add(has_avx512_vnni(), "avx512_vnni");
  return s.empty() ? "baseline x86-64" : s;
}

double measure_fp32_gflop_s(const MachineOptions& options, std::string* isa) {
  MachineOptions o = options;
  o.threads = std::max(1, o.threads);
  o.repetitions = std::max(1, o.repetitions);
  if (has_avx512f()) {
    *isa = "avx512f";
    return measure_compute(o, fp32_avx512, kFp32Avx512Flops) / 1e9;
  }
  if (has_avx2_fma()) {
    *isa = "avx2+fma";
    return measure_compute(o, fp32_avx2, kFp32Avx2Flops) / 1e9;
  }
  *isa = "scalar";
  return measure_compute(o, fp32_scalar, kFp32ScalarFlops) / 1e9;
}

MachineLimits measure_machine(const MachineOptions& options) {
  MachineOptions o = options;
  o.threads = std::max(1, o.threads);
  o.repetitions = std::max(1, o.repetitions);
  MachineLimits m;
  m.threads = o.threads;
  m.read_gb_s = measure_read(o) / 1e9;

  m.fp32_gflop_s = measure_fp32_gflop_s(o, &m.fp32_isa);

  if (has_avx512_bf16()) {
    m.bf16_native = true;
    m.bf16_isa = "avx512_bf16 vdpbf16ps";
    m.bf16_gflop_s = measure_compute(o, bf16_avx512, kBf16Avx512Flops) / 1e9;
  } else if (has_avx2_fma()) {
    m.bf16_isa = "emulated: avx2 bf16->f32 shift/mask + fma";
    m.bf16_gflop_s = measure_compute(o, bf16_emulated_avx2, kBf16EmulatedAvx2Flops) / 1e9;
  } else {
    m.bf16_isa = "emulated: scalar";
    m.bf16_gflop_s = measure_compute(o, bf16_emulated_scalar, kBf16EmulatedScalarFlops) / 1e9;
  }

  if (has_avx512_vnni()) {
    m.int8_isa = "avx512_vnni vpdpbusd";
    m.int8_gop_s = measure_compute(o, int8_avx512_vnni, kInt8Avx512VnniOps) / 1e9;
  } else if (has_avx_vnni()) {
    m.int8_isa = "avx_vnni vpdpbusd";
    m.int8_gop_s = measure_compute(o, int8_avx_vnni, kInt8AvxVnniOps) / 1e9;
  } else if (__builtin_cpu_supports("avx2")) {
    m.int8_isa = "avx2 vpmaddubsw+vpmaddwd";
    m.int8_gop_s = measure_compute(o, int8_avx2, kInt8Avx2Ops) / 1e9;
  } else {
    m.int8_isa = "scalar";
    m.int8_gop_s = measure_compute(o, int8_scalar, kInt8ScalarOps) / 1e9;
  }
  return m;
}

}  // namespace moepp
