// The row-dot-product kernels behind matmul, one implementation per instruction set behind one
// dispatch point. Every implementation computes the same bits, so a batch of tokens gives each
// token exactly what it would get alone (the server's batching and speculative verification rely on
// it) and the scalar twin is a bit-exact reference for the SIMD code. The one exception is
// vdpbf16ps (AVX-512 sets on CPUs with AVX512_BF16), which flushes subnormal bf16 products and
// sums to zero: for values below 1.2e-38 its results can differ from the twin's, and from the
// same set's FMA path (the avx512 set's batches of 48 tokens or more). Attention's values
// product takes it too for a bf16 forward, two rows an instruction: a query in a block pairs its
// rows from a different first row than alone, which again matters only below 1.2e-38. The AVX2
// set's values product for blocks of 2-4 such queries is one FMA per row, which equals the
// multiply then add wherever the bf16 x bf16 product is exact, i.e. except below 1.2e-38 too.
//
// The contract, for one output y = dot(x, W row n) over K columns:
//   - K is zero-padded to a multiple of 8; lane j (0..7) accumulates
//     lane_j = fma(x[k + j], w(n, k + j), lane_j) for k = 0, 8, 16, ... in that order;
//   - y = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
//   - w(n, c) is the weight as f32 (exact for f32 and bf16).
// Group-quantised weights (q8, q4) take the integer path instead, as llama.cpp's Q8_0 dot products
// do: each input row is quantised per group of 32 columns (quantize_activations), and the groups
// g = 0, 1, .. are added in order to one accumulator,
//     acc = fma(float(isum_g), sw_g * sx_g, acc)    (acc starts at 0; y = acc)
// where isum_g is the exact integer sum, over the group's columns below K, of w_int * x_int (w_int
// = q for q8, nibble - 8 for q4), sw_g the weight row's scale and sx_g the input's. One
// conversion and one FMA per group and row, not per 4 columns: with the interleaved layout
// (tensor/weight.h) a 16-row register of vpdpbusd sums ends a group holding each row's isum_g.
// int8 x int8 products cost a quarter of the f32 work per weight, which is what lets a quantised
// decode keep up with memory.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/weight.h"

namespace moepp::kernels {

// y[m * ldy + (n - n0)] = dot(x[m * ldx ...], W row n) for m < M, n0 <= n < n1.
using RowsKernel = void (*)(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, const Weight& w, int64_t n0,
                            int64_t n1, float* y /*[M, ldy]*/, int64_t ldy);

struct QuantizedRows;
// The integer path on inputs quantised once by the caller (quantize_activations): rows [m0, m0 + M)
// of `a` against q8/q4 weight rows [n0, n1).
using QuantizedRowsKernel = void (*)(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0,
                                     int64_t n1, float* y /*[M, ldy]*/, int64_t ldy);
// Those inputs: x quantised per group of 32 columns (QuantizedRows below), the same bits in every
// set for finite x.
// quantize_rows writes rows [m0, m0 + M) of `out`, which size_quantized_rows sized (so that ranges
// of rows can be quantised on several threads).
using QuantizeRowsKernel = void (*)(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, int64_t K,
                                    QuantizedRows* out, int64_t m0);

// Vector kernels for attention: dot(a, b) over n floats by the same 8-lane contract as above,
// and y[i] = y[i] + a * x[i] (a multiply, then an add: two roundings, as the scalar loop).
using DotKernel = float (*)(const float* a, const float* b, int64_t n);
using AxpyKernel = void (*)(float a, const float* x, float* y, int64_t n);
// The same over `count` rows `stride` floats apart (attention over the keys and values of a
// sequence's cache): y[j] = dot(a, rows + j * stride, n), each as DotKernel; and for j = 0, 1, ..
// in order, y[i] = y[i] + c[j] * rows[j * stride + i], each as AxpyKernel.
using DotRowsKernel = void (*)(const float* a, const float* rows, int64_t stride, int64_t count, int64_t n,
                               float* y /*[count]*/);
using AxpyRowsKernel = void (*)(const float* c /*[count]*/, const float* rows, int64_t stride, int64_t count,
                                float* y /*[n]*/, int64_t n);

// Several queries against the same rows (a block of a sequence's queries in prefill): for
// a < A, y[a * ldy + j] = dot(q + a * ldq, rows + j * stride, n) for j < count, each as DotKernel;
// and y + a * ldy += c[a * ldc + j] * row j for j = 0, 1, .. < count, each as AxpyRowsKernel. Each
// row is loaded once for all A queries.
using DotRowsBlockKernel = void (*)(const float* q /*[A, ldq]*/, int64_t A, int64_t ldq, const float* rows,
                                    int64_t stride, int64_t count, int64_t n, float* y /*[A, ldy]*/, int64_t ldy);
using AxpyRowsBlockKernel = void (*)(const float* c /*[A, ldc]*/, int64_t A, int64_t ldc, const float* rows,
                                     int64_t stride, int64_t count, float* y /*[A, ldy]*/, int64_t ldy, int64_t n);

// The same two on a bf16 KV cache (layers/kv_cache.h): rows hold bf16 bit patterns, read as the
// f32 values they are, so the results have the bits of the f32 kernels on those values.
using DotRowsBlockBf16Kernel = void (*)(const float* q /*[A, ldq]*/, int64_t A, int64_t ldq, const uint16_t* rows,
                                        int64_t stride, int64_t count, int64_t n, float* y /*[A, ldy]*/, int64_t ldy);
using AxpyRowsBlockBf16Kernel = void (*)(const float* c /*[A, ldc]*/, int64_t A, int64_t ldc, const uint16_t* rows,
                                         int64_t stride, int64_t count, float* y /*[A, ldy]*/, int64_t ldy, int64_t n);

// Calls block(std::integral_constant<int, B>{}, a0) for a0 = 0, 4, 8, .. < A with B = min(4, A - a0):
// the sets' attention kernels take up to 4 queries at once, B a template argument.
template <class Block>
void for_query_blocks_of_4(int64_t A, Block&& block) {
  for (int64_t a0 = 0; a0 < A; a0 += 4) {
    switch (A - a0) {
      case 1: block(std::integral_constant<int, 1>{}, a0); break;
      case 2: block(std::integral_constant<int, 2>{}, a0); break;
      case 3: block(std::integral_constant<int, 3>{}, a0); break;
      default: block(std::integral_constant<int, 4>{}, a0); break;
    }
  }
}

// A cache row's element as f32: itself, or the value of its bf16 bits (the sets' scalar tails).
inline float row_value(const float* row, int64_t i) { return row[i]; }
inline float row_value(const uint16_t* row, int64_t i) { return bf16_to_f32(row[i]); }

// The block kernels of sets without a shared-row path: the set's one-query kernel per query.
template <DotRowsKernel kDotRows>
void dot_rows_each_query(const float* q, int64_t A, int64_t ldq, const float* rows, int64_t stride, int64_t count,
                         int64_t n, float* y, int64_t ldy) {
  for (int64_t a = 0; a < A; ++a) kDotRows(q + a * ldq, rows, stride, count, n, y + a * ldy);
}
template <AxpyRowsKernel kAxpyRows>
void axpy_rows_each_query(const float* c, int64_t A, int64_t ldc, const float* rows, int64_t stride, int64_t count,
                          float* y, int64_t ldy, int64_t n) {
  for (int64_t a = 0; a < A; ++a) kAxpyRows(c + a * ldc, rows, stride, count, y + a * ldy, n);
}
// The same on bf16 rows, from a set's dot and axpy of one bf16 row.
template <float (*kDot)(const float*, const uint16_t*, int64_t)>
void dot_bf16_rows_each_query(const float* q, int64_t A, int64_t ldq, const uint16_t* rows, int64_t stride,
                              int64_t count, int64_t n, float* y, int64_t ldy) {
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < count; ++j) y[a * ldy + j] = kDot(q + a * ldq, rows + j * stride, n);
}
template <void (*kAxpy)(float, const uint16_t*, float*, int64_t)>
void axpy_bf16_rows_each_query(const float* c, int64_t A, int64_t ldc, const uint16_t* rows, int64_t stride,
                               int64_t count, float* y, int64_t ldy, int64_t n) {
  for (int64_t a = 0; a < A; ++a)
    for (int64_t j = 0; j < count; ++j) kAxpy(c[a * ldc + j], rows + j * stride, y + a * ldy, n);
}

// y[i] = exp_f32(x[i] - shift) (ops/exp_f32.h: the same bits in every set; y may be x), and
// the sum of y in double: lane j (0..7) adds y[j], y[j + 8], .. in order, then
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). Softmax and SiLU's exponentials.
using ExpSumKernel = double (*)(const float* x, float shift, float* y /*[n]*/, int64_t n);

// y[i] = x[i] / (1 + exp_f32(-x[i])): SiLU as ops/exp_f32.h's silu() computes it, the same bits
// in every set (y may be x). The experts' SwiGLU, without exp_sum's sum it does not need.
using SiluKernel = void (*)(const float* x, float* y /*[n]*/, int64_t n);

// Rows of a q8 KV cache (ops/kv_quant.h) widened to f32: out[r * n + i] = float(q[r * n + i]) *
// scales[r * groups + i / 32] with groups = ceil(n / 32), one rounding each (the same bits in
// every set). Attention widens a chunk of rows at a time into L1 and runs the f32 kernels on it.
using DequantizeKvRowsKernel = void (*)(const int8_t* q /*[rows, n]*/, const float* scales /*[rows, groups]*/,
                                        int64_t rows, int64_t n, float* out /*[rows, n]*/);
// dot_rows_block and axpy_rows_block on `count` such rows (n apart, scales groups apart), with the
// bits of the f32 kernels on their widened values, reading the int8 rows directly: false, computing
// nothing, for a width the set's kernel does not take (the caller then widens chunks into L1).
using DotRowsBlockQ8Kernel = bool (*)(const float* q /*[A, ldq]*/, int64_t A, int64_t ldq, const int8_t* rows,
                                      const float* scales, int64_t count, int64_t n, float* y /*[A, ldy]*/, int64_t ldy);
using AxpyRowsBlockQ8Kernel = bool (*)(const float* c /*[A, ldc]*/, int64_t A, int64_t ldc, const int8_t* rows,
                                       const float* scales, int64_t count, float* y /*[A, ldy]*/, int64_t ldy, int64_t n);

struct PairedRows;
// Batch inputs converted once for many calls on the same inputs (every row task of a matmul or of
// an expert), instead of once per call: pair_rows returns false, leaving nothing usable, where the
// set has no such path or an input is not a bf16 value; paired_rows then multiplies rows
// [m0, m0 + M) of them by unquantised bf16 weight rows [n0, n1), with the bits of `rows`.
// pair_rows writes M rows of paired_row_words(K) words each.
using PairRowsKernel = bool (*)(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, int64_t K,
                                uint32_t* pairs /*[M, paired_row_words(K)]*/);
using PairedRowsKernel = void (*)(const PairedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0,
                                  int64_t n1, float* y /*[M, ldy]*/, int64_t ldy);

struct KernelSet {
  const char* isa;  // "scalar", "avx2", "avx2vnni", "avx512", "avx512bf16"
  RowsKernel rows;  // any weight format (q8/q4: quantises x itself, once per call)
  QuantizedRowsKernel quantized_rows;
  QuantizeRowsKernel quantize_rows;
  DotKernel dot;
  AxpyKernel axpy;
  DotRowsKernel dot_rows;
  AxpyRowsKernel axpy_rows;
  DotRowsBlockKernel dot_rows_block;
  AxpyRowsBlockKernel axpy_rows_block;
  ExpSumKernel exp_sum;
  DotRowsBlockBf16Kernel dot_rows_block_bf16;
  AxpyRowsBlockBf16Kernel axpy_rows_block_bf16;
  PairRowsKernel pair_rows = nullptr;  // null in sets whose batch kernels read f32 inputs directly
  PairedRowsKernel paired_rows = nullptr;
  SiluKernel silu = nullptr;
  DequantizeKvRowsKernel dequantize_kv_rows = nullptr;
  DotRowsBlockQ8Kernel dot_rows_block_q8 = nullptr;    // null: every width takes the chunked path
  AxpyRowsBlockQ8Kernel axpy_rows_block_q8 = nullptr;
  // Batches of this many tokens or more take `rows` on f32 inputs even where the set has a paired
  // path (the avx512 set: f32 panels and FMAs from 48 tokens); callers pair only smaller ones.
  int64_t paired_below = std::numeric_limits<int64_t>::max();
  // Whether a batch of `tokens` inputs is worth pairing for this set (pair_rows may still refuse
  // inputs that are not bf16 values): the one rule of matmul_many, the experts and bench.
  bool pairs(int64_t tokens) const { return pair_rows != nullptr && tokens > 1 && tokens < paired_below; }
};

// The scalar reference (always present), the AVX2+FMA set, the AVX2 set with its q8/q4 integer
// path on AVX-VNNI (CPUs with AVX-VNNI but without AVX-512, such as Intel's client CPUs from Alder
// Lake on) and the AVX-512 set (F, BW, DQ, VL, VNNI; it uses the AVX2 set for what it does not
// cover; bf16 batches on f32 panels and FMAs) and its twin that takes bf16 batches of bf16-valued
// inputs on vdpbf16ps (AVX512_BF16). Null when the CPU lacks them.
const KernelSet& scalar_kernels();
const KernelSet* avx2_kernels();
const KernelSet* avx2vnni_kernels();
const KernelSet* avx512_kernels();
const KernelSet* avx512bf16_kernels();

// The set in use: the best the CPU supports, or the one MOEPP_KERNELS names ("scalar", "avx2",
// "avx2vnni", "avx512", "avx512bf16") when the CPU has it.
const KernelSet& active_kernels();
// Every set this CPU can run, best last (tests run each one).
std::vector<const KernelSet*> available_kernels();

// How many memory streams one thread's one-token products walk at once (the AVX-512 sets' bf16,
// q8 and q4 matrix-vector kernels; blocks_as_streams in block_streams.h): 1, 2 or 4, per kernel.
// Hardware prefetchers differ: AMD's Zen 4 keeps the most lines in flight for one stream, Zen 5
// for four of bf16's 4-line steps and two of q8's 9-line and q4's 5-line ones
// (docs/performance.md, "Streams per thread by CPU"). MOEPP_STREAMS, where it names 1, 2 or 4,
// forces one count on every kernel; `moepp bench --stream --streams 1,2,4` compares them. The
// count changes no bits: every block keeps its own sums in its own order.
enum class StreamKernel { kBf16, kQ8, kQ4 };
// The count `kernel` walks now: the forced one, else its CPU default.
int one_token_streams(StreamKernel kernel);
// Without a forced count: 1 on AMD family 19h (Zen 4); on family 1ah (Zen 5) 4 for bf16 and 2 for
// q8 and q4; else 4.
int default_one_token_streams(StreamKernel kernel);
// Whether `streams` is a count the kernels take: 1, 2 or 4.
bool valid_one_token_streams(int streams);
// The count forced on every kernel (MOEPP_STREAMS, set_one_token_streams), or 0: CPU defaults.
int forced_one_token_streams();
// Forces 1, 2 or 4 on every kernel for later calls, or with 0 puts back the CPU defaults (false,
// changing nothing, for any other value). Not for use while products run on other threads.
bool set_one_token_streams(int streams);
// Puts back, when it goes out of scope, the forced count (or the defaults) in place when it was
// made (bench probes, tests).
class KeepOneTokenStreams {
 public:
  KeepOneTokenStreams() : kept_(forced_one_token_streams()) {}
  ~KeepOneTokenStreams() { set_one_token_streams(kept_); }
  KeepOneTokenStreams(const KeepOneTokenStreams&) = delete;
  KeepOneTokenStreams& operator=(const KeepOneTokenStreams&) = delete;

 private:
  int kept_;
};
// The count `kernel` walks in the active set: one_token_streams(kernel) in the AVX-512 sets (bf16
// on CPUs with AVX512_BF16, for bf16-valued inputs), 0 where it walks one fixed order.
int active_one_token_streams(StreamKernel kernel);
// The streams the active set's one-token product of `w` walks: active_one_token_streams() of its
// kernel for interleaved q8, q4 and bf16 weights, 0 for the rest (one fixed order).
int one_token_streams_of(const Weight& w);

// Weight element as f32 (dequantised: float(q) * scale for q8/q4).
float weight_element(const Weight& w, int64_t n, int64_t c);
// Integer value of a quantised weight: q (q8) or nibble - 8 (q4).
int weight_integer(const Weight& w, int64_t n, int64_t c);

// Input rows quantised for the integer path, per group of 32 columns: sx = amax / 127, x_int =
// nearbyint(x * (1 / sx)) (0 where amax is 0), columns past K zero.
struct QuantizedRows {
  int64_t groups = 0;             // ceil(K / 32)
  std::vector<int8_t> q;          // [M, groups * 32]
  std::vector<float> scale;       // [M, groups]
  std::vector<int32_t> group_sum;  // [M, groups]: sum of x_int over the group (the offset that
                                   // unsigned weights, q8 + 128 and q4's nibbles, add)
};
// What the SIMD integer kernels share on the interleaved layout (tensor/weight.h): its group
// stride and value bytes; the input's 4 bytes of columns 4i .. 4i + 3 of a group as one word
// (which they broadcast to every row's lane); and a group's starting sum on unsigned weights
// (q8 + 128, q4's nibbles as stored), minus the offset they add: 2^7 or 2^3 times the input's
// group sum.
template <bool kQ4>
struct InterleavedQuant {
  static constexpr WeightQuant kQuant = kQ4 ? WeightQuant::kQ4 : WeightQuant::kQ8;
  static constexpr int64_t kStride = Weight::interleaved_group_stride(kQuant);
  static constexpr int64_t kValues = Weight::interleaved_group_values(kQuant);  // then the 16 rows' scales
};
inline int32_t input_word(const int8_t* group, int i) {
  int32_t v;
  std::memcpy(&v, group + 4 * i, sizeof v);
  return v;
}
inline int32_t unsigned_weights_start(int32_t group_sum, bool q4) { return -(group_sum << (q4 ? 3 : 7)); }
// Inputs as vdpbf16ps reads them (the AVX-512 sets on CPUs with AVX512_BF16): per row, Q = ceil(K / 16)
// groups of 8 lanes, lane j holding bf16(x[16q + j]) in its high half and bf16(x[16q + 8 + j]) in
// its low half.
struct PairedRows {
  int64_t K = 0;                // 0 when pairing failed
  std::vector<uint32_t> pairs;  // [M, Q, 8]
};
inline int64_t paired_row_words(int64_t K) { return (K + 15) / 16 * 8; }

// Sizes `out` for M rows of K columns.
void size_quantized_rows(int64_t M, int64_t K, QuantizedRows* out);
// All M rows of x quantised by `set` into `out`.
void quantize_all_rows(const KernelSet& set, const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, int64_t K,
                       QuantizedRows* out);
// The active set's quantize_rows.
void quantize_activations(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, int64_t K, QuantizedRows* out);
// A RowsKernel's q8/q4 case: x quantised once for this call (quantize_activations), then the
// set's `quantized` kernel on rows [n0, n1) of w.
void rows_on_quantized_inputs(QuantizedRowsKernel quantized, const float* x /*[M, ldx]*/, int64_t M, int64_t ldx,
                              const Weight& w, int64_t n0, int64_t n1, float* y /*[M, ldy]*/, int64_t ldy);

}  // namespace moepp::kernels
