// Scalar reference kernel and the dispatch point. The scalar code follows the contract in
// dot_kernels.h literally (std::fma per lane), so the SIMD sets can be tested for equal bits.
#include "ops/dot_kernels.h"

#include "ops/exp_f32.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace moepp::kernels {

float weight_element(const Weight& w, int64_t n, int64_t c) { return w.at(n, c); }

int weight_integer(const Weight& w, int64_t n, int64_t c) {
  if (w.quant == WeightQuant::kQ8) return w.q8_value(n, c);
  return w.q4_nibble(n, c) - 8;
}

namespace {

void scalar_quantize_rows(const float* x, int64_t M, int64_t ldx, int64_t K, QuantizedRows* out, int64_t m0) {
  const int64_t G = out->groups;
  // Padding columns past K stay 0, and the group sums start from 0.
  std::fill(out->q.begin() + m0 * G * kQuantGroup, out->q.begin() + (m0 + M) * G * kQuantGroup, int8_t{0});
  std::fill(out->group_sum.begin() + m0 * G, out->group_sum.begin() + (m0 + M) * G, 0);
  for (int64_t m = m0; m < m0 + M; ++m)
    for (int64_t g = 0; g < G; ++g) {  // row m of out is row m - m0 of x
      const int64_t c0 = g * kQuantGroup, c1 = std::min(K, c0 + kQuantGroup);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[(m - m0) * ldx + c]));
      const float sx = amax / 127.0f;
      const float inv = amax > 0.0f ? 1.0f / sx : 0.0f;
      out->scale[m * G + g] = sx;
      int8_t* q = out->q.data() + (m * G + g) * kQuantGroup;
      int32_t& sum = out->group_sum[m * G + g];
      for (int64_t c = c0; c < c1; ++c) {
        // Round to nearest even by the 1.5 * 2^23 trick (exact for |v| < 2^22): the same as
        // nearbyint, without its library call (this runs for every input of every matmul).
        const float v = std::clamp(x[(m - m0) * ldx + c] * inv, -127.0f, 127.0f);
        q[c - c0] = static_cast<int8_t>((v + 0x1.8p23f) - 0x1.8p23f);
        sum += q[c - c0];
      }
    }
}

float reference_quantized_dot(const QuantizedRows& a, int64_t m, const Weight& w, int64_t n) {
  const int64_t G = a.groups;
  float acc = 0.0f;
  for (int64_t g = 0; g < G; ++g) {
    const float d = w.scales[w.scale_index(n, g)] * a.scale[m * G + g];
    const int8_t* xq = a.q.data() + (m * G + g) * kQuantGroup;
    int32_t isum = 0;
    for (int64_t c = g * kQuantGroup; c < std::min(w.cols, (g + 1) * kQuantGroup); ++c)
      isum += weight_integer(w, n, c) * xq[c - g * kQuantGroup];
    acc = std::fma(static_cast<float>(isum), d, acc);
  }
  return acc;
}

float reference_dot(const float* x, const Weight& w, int64_t n) {
  const int64_t K = w.cols;
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t k = 0; k < K; k += 8)
    for (int j = 0; j < 8; ++j) {
      const bool in = k + j < K;
      lane[j] = std::fma(in ? x[k + j] : 0.0f, in ? weight_element(w, n, k + j) : 0.0f, lane[j]);
    }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void scalar_quantized_rows(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1,
                           float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) y[m * ldy + (n - n0)] = reference_quantized_dot(a, m0 + m, w, n);
}

void scalar_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                 int64_t ldy) {
  if (w.quant != WeightQuant::kNone) return rows_on_quantized_inputs(scalar_quantized_rows, x, M, ldx, w, n0, n1, y, ldy);
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) y[m * ldy + (n - n0)] = reference_dot(x + m * ldx, w, n);
}

template <class T>
float scalar_dot_of(const float* a, const T* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t k = 0; k < n; k += 8)
    for (int j = 0; j < 8 && k + j < n; ++j) lane[j] = std::fma(a[k + j], row_value(b, k + j), lane[j]);
  // Lanes past n would add fma(0, 0, lane) = lane + 0: the same value, except -0 becoming +0.
  if (n % 8 != 0)
    for (int j = static_cast<int>(n % 8); j < 8; ++j) lane[j] = std::fma(0.0f, 0.0f, lane[j]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

float scalar_dot(const float* a, const float* b, int64_t n) { return scalar_dot_of(a, b, n); }

template <class T>
void scalar_axpy_of(float a, const T* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] + a * row_value(x, i);
}

void scalar_axpy(float a, const float* x, float* y, int64_t n) { scalar_axpy_of(a, x, y, n); }

void scalar_dot_rows(const float* a, const float* rows, int64_t stride, int64_t count, int64_t n, float* y) {
  for (int64_t j = 0; j < count; ++j) y[j] = scalar_dot(a, rows + j * stride, n);
}

void scalar_axpy_rows(const float* c, const float* rows, int64_t stride, int64_t count, float* y, int64_t n) {
  for (int64_t j = 0; j < count; ++j) scalar_axpy(c[j], rows + j * stride, y, n);
}

double scalar_exp_sum(const float* x, float shift, float* y, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    y[i] = exp_f32(x[i] - shift);
    lane[i % 8] += y[i];
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void scalar_silu(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = silu(x[i]);
}

void scalar_dequantize_kv_rows(const int8_t* q, const float* scales, int64_t rows, int64_t n, float* out) {
  const int64_t groups = (n + kQuantGroup - 1) / kQuantGroup;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = static_cast<float>(q[r * n + i]) * scales[r * groups + i / kQuantGroup];
}

const KernelSet kScalar{"scalar",
                        scalar_rows,
                        scalar_quantized_rows,
                        scalar_quantize_rows,
                        scalar_dot,
                        scalar_axpy,
                        scalar_dot_rows,
                        scalar_axpy_rows,
                        dot_rows_each_query<scalar_dot_rows>,
                        axpy_rows_each_query<scalar_axpy_rows>,
                        scalar_exp_sum,
                        dot_bf16_rows_each_query<scalar_dot_of<uint16_t>>,
                        axpy_bf16_rows_each_query<scalar_axpy_of<uint16_t>>,
                        nullptr,
                        nullptr,
                        scalar_silu,
                        scalar_dequantize_kv_rows};

const KernelSet& choose() {
  const std::vector<const KernelSet*> sets = available_kernels();
  if (const char* forced = std::getenv("MOEPP_KERNELS"))
    for (const KernelSet* set : sets)
      if (std::strcmp(forced, set->isa) == 0) return *set;
  return *sets.back();
}

}  // namespace

const KernelSet& scalar_kernels() { return kScalar; }

void size_quantized_rows(int64_t M, int64_t K, QuantizedRows* out) {
  const int64_t G = (K + kQuantGroup - 1) / kQuantGroup;
  out->groups = G;
  out->q.resize(static_cast<size_t>(M * G * kQuantGroup));
  out->scale.resize(static_cast<size_t>(M * G));
  out->group_sum.resize(static_cast<size_t>(M * G));
}

void quantize_all_rows(const KernelSet& set, const float* x, int64_t M, int64_t ldx, int64_t K, QuantizedRows* out) {
  size_quantized_rows(M, K, out);
  set.quantize_rows(x, M, ldx, K, out, 0);
}

void quantize_activations(const float* x, int64_t M, int64_t ldx, int64_t K, QuantizedRows* out) {
  quantize_all_rows(active_kernels(), x, M, ldx, K, out);
}

void rows_on_quantized_inputs(QuantizedRowsKernel quantized, const float* x, int64_t M, int64_t ldx, const Weight& w,
                              int64_t n0, int64_t n1, float* y, int64_t ldy) {
  thread_local QuantizedRows a;  // reused by a thread's calls: no allocation per matmul
  quantize_activations(x, M, ldx, w.cols, &a);
  quantized(a, 0, M, w, n0, n1, y, ldy);
}

const KernelSet& active_kernels() {
  static const KernelSet& chosen = choose();
  return chosen;
}

namespace {

// The count MOEPP_STREAMS names (1, 2 or 4), else 0: each kernel's CPU default.
int initial_forced_streams() {
  if (const char* forced = std::getenv("MOEPP_STREAMS")) {
    const int streams = std::atoi(forced);
    if (valid_one_token_streams(streams)) return streams;
  }
  return 0;
}

std::atomic<int>& forced_streams() {
  static std::atomic<int> count{initial_forced_streams()};
  return count;
}

// The CPU's family as cpuid leaf 1 gives it (base plus extended family; AMD Zen 4 0x19, Zen 5
// 0x1a). GCC 12's __builtin_cpu_is knows no name for family 1ah.
unsigned cpu_family() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return 0;
  const unsigned base = (eax >> 8) & 0xf;
  return base == 0xf ? base + ((eax >> 20) & 0xff) : base;
}

}  // namespace

int default_one_token_streams(StreamKernel kernel) {
  // One thread's one-token products against a plain read of the same cold memory, huge pages
  // (`moepp bench --stream --streams 1,2,4`; docs/performance.md, "Streams per thread by CPU").
  // Zen 4 (session 26), one stream against four: bf16 0.92-0.95 / 0.77-0.83, q8 0.88-0.96 /
  // 0.66-0.81, q4 0.91-0.92 / 0.81-0.82. Zen 5 with 16-row q8/q4 blocks (session 34; six shapes,
  // one and two threads, three alternations; then the models): bf16 reads best with four (median
  // 0.95 against 0.91 with two); q8 with four 0.50-0.93 (median 0.65) against 0.69-1.06 (0.88) with
  // two and 0.74-0.98 (0.90) with one (a q8 stream's step is 9 cache lines, four streams' 36); two
  // over one from the models: one-thread decode's share 0.87-0.98 against 0.81-0.90 (three rounds
  // of mixtral-1.8b and moepp-1b; with two threads one was the steadier); q4 (5 lines a
  // step) decodes fastest with two on one and two threads (moepp-1b two threads 379-496 tok/s
  // against 331-436 with four, 295-444 with one). Other CPUs keep four, as measured on Zen 5 with
  // 8-row blocks (session 14) and run on the Intel machine of session 25.
  // cpuid traps to the hypervisor under KVM: asked once, not per product.
  static const unsigned family = __builtin_cpu_is("amd") ? cpu_family() : 0;
  if (family == 0x19) return 1;
  if (family == 0x1a && kernel != StreamKernel::kBf16) return 2;
  return 4;
}

int forced_one_token_streams() { return forced_streams().load(std::memory_order_relaxed); }

int one_token_streams(StreamKernel kernel) {
  const int forced = forced_one_token_streams();
  return forced != 0 ? forced : default_one_token_streams(kernel);
}

int active_one_token_streams(StreamKernel kernel) {
  if (std::strncmp(active_kernels().isa, "avx512", 6) != 0) return 0;
  if (kernel == StreamKernel::kBf16 && !__builtin_cpu_supports("avx512bf16")) return 0;
  return one_token_streams(kernel);
}

int one_token_streams_of(const Weight& w) {
  if (!w.interleaved) return 0;
  if (w.quant == WeightQuant::kQ8) return active_one_token_streams(StreamKernel::kQ8);
  if (w.quant == WeightQuant::kQ4) return active_one_token_streams(StreamKernel::kQ4);
  return w.dtype == DType::kBF16 ? active_one_token_streams(StreamKernel::kBf16) : 0;
}

bool valid_one_token_streams(int streams) { return streams == 1 || streams == 2 || streams == 4; }

bool set_one_token_streams(int streams) {
  if (streams != 0 && !valid_one_token_streams(streams)) return false;
  forced_streams().store(streams, std::memory_order_relaxed);
  return true;
}

std::vector<const KernelSet*> available_kernels() {
  std::vector<const KernelSet*> sets{&kScalar};
  if (const KernelSet* k = avx2_kernels()) sets.push_back(k);
  if (const KernelSet* k = avx2vnni_kernels()) sets.push_back(k);
  const KernelSet* avx512 = avx512_kernels();
  const KernelSet* avx512bf16 = avx512bf16_kernels();
  // Which of the two AVX-512 sets is best depends on vdpbf16ps's throughput against the FMA's
  // (`moepp bench --machine`, per thread): Intel's cores (Sapphire Rapids under KVM: 106 GFLOP/s
  // against 212) run it at half the FMA's rate, so large batches go faster on f32 panels; AMD's
  // Zen 5 and Zen 4 at twice (447-463 against 218-231; Zen 4 233 against 117, where its batches
  // of 48-512 tokens ran 1.7-2.0x faster on vdpbf16ps, `bench --batch-kernels`); any other
  // non-Intel CPU with AVX512_BF16 is taken to be alike. One-token products are the same in both.
  const bool dpbf16_at_half_rate = __builtin_cpu_is("intel");
  if (avx512bf16 != nullptr && dpbf16_at_half_rate) sets.push_back(avx512bf16);
  if (avx512 != nullptr) sets.push_back(avx512);
  if (avx512bf16 != nullptr && !dpbf16_at_half_rate) sets.push_back(avx512bf16);
  return sets;
}

}  // namespace moepp::kernels
