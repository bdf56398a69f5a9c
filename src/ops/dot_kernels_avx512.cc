// AVX-512 kernels (F, BW, DQ, VL and VNNI), chosen at run time by dot_kernels.cc. Same bits as the
// scalar reference (contract in dot_kernels.h), so they mix freely with the AVX2 set, which they
// call for what they do not cover (f32/bf16 row-major one-token products and rows outside whole
// blocks of 8; row-major q8/q4).
//
// The f32/bf16 contract sums each output in 8 lanes. A zmm register holds two of those 8-lane accumulators,
// one per half: weight rows 2i and 2i + 1 side by side, against the same 8 inputs broadcast to both
// halves. The row-interleaved layout (tensor/weight.h) already stores rows 2i and 2i + 1 of a
// chunk next to each other, so one 64-byte load feeds one register.
//   - One token: a block of 8 rows = 4 zmm accumulators, one sequential stream.
//   - Batches: weight rows are packed (converted to f32 once) into the same 8-row panel layout and
//     multiplied in tiles of up to 6 tokens x 8 rows (24 of the 32 zmm registers); inputs larger
//     than L2 go in blocks of tokens.
//   - bf16 weights with bf16-valued inputs (--dtype bf16): vdpbf16ps where the CPU has
//     AVX512_BF16 (see the section below for how it keeps the contract), for one token and, in
//     the avx512bf16 set, for every batch; the avx512 set (CPUs whose vdpbf16ps runs at half the
//     FMA's rate) takes batches of kPanelBatchTokens or more on the f32 panels instead.
//   - q8/q4: one 32-bit lane per row of a 16-row interleaved block; vpdpbusd with the input's 4
//     bytes broadcast adds 4 columns to every row exactly, so a group ends with each row's integer
//     sum in its lane (the contract's isum_g): weights are made unsigned (q8 + 128; q4 nibbles as
//     stored) and the sums start at minus the offset that adds (QuantizedRows::group_sum).
//   - Attention: dot_rows takes 8 keys per step, two per register; axpy_rows keeps 64 outputs in
//     registers across all the values.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/block_streams.h"
#include "ops/dot_kernels.h"
#include "ops/exp_f32.h"
#include "ops/prefetch.h"

// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*(), which its
// uninitialised-use analysis reports at every inlined call (a false positive of the headers).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace moepp::kernels {
namespace {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")

// 64 bytes as two 256-bit loads, for streams of weights and cached keys and values. On Zen 5 under
// KVM a plain read with one 512-bit load per cache line streamed at 0.76-0.93 of one with two
// 256-bit loads (alternated in one process); on Zen 4 the bf16 one-token kernel read 0.89-0.99 of
// the read beside it with 512-bit loads and 0.92-1.03 with halves (`bench --stream --weights bf16
// -t 1`, six shapes, three alternations), its FMA twin 0.91-0.93 and 0.96-0.99. Not the f32 one:
// halves read 0.82-0.87 of the read there, 512-bit loads 0.88-0.92.
inline __m512i load_halves(const void* p) {
  const auto* half = static_cast<const __m256i*>(p);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(half)), _mm256_loadu_si256(half + 1), 1);
}

// The 8 outputs of a block's accumulators acc[i] (row 2i in the low half, row 2i + 1 in the high
// half, 8 lanes each), in row order, each summed as the contract does: ((l0 + l1) + (l2 + l3)) +
// ((l4 + l5) + (l6 + l7)). Shuffles pair up lanes of all 8 rows at once (three rounds of
// even + odd), where one row at a time took two horizontal adds and an extract per row.
inline __m256 sum_lanes8(const __m512 acc[4]) {
  constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
  // 128-bit quarters of s01: rows 0, 2 lanes 0-3 | rows 0, 2 lanes 4-7 | rows 1, 3 lanes 0-3 |
  // rows 1, 3 lanes 4-7, as (l0 + l1, l2 + l3) pairs (l4 + l5, l6 + l7 in the second and fourth).
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_ps(acc[0], acc[1], kEven), _mm512_shuffle_ps(acc[0], acc[1], kOdd));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_ps(acc[2], acc[3], kEven), _mm512_shuffle_ps(acc[2], acc[3], kOdd));
  // Quarters: rows 0 2 4 6 (l0+l1)+(l2+l3) | rows 0 2 4 6 (l4+l5)+(l6+l7) | rows 1 3 5 7 .. | ..
  const __m512 v = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, kEven), _mm512_shuffle_ps(s01, s23, kOdd));
  // Low half: rows 0 2 4 6 | rows 1 3 5 7, the two sums added.
  const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(v, v, kEven), _mm512_shuffle_f32x4(v, v, kOdd));
  return _mm256_permutevar8x32_ps(_mm512_castps512_ps256(w), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Inputs k .. k + 7 in both halves; lanes at or past K are 0 (the contract's padding).
inline __m512 input_pair(const float* x, int64_t k, int64_t K) {
  if (k + 8 <= K) return _mm512_broadcast_f32x8(_mm256_loadu_ps(x + k));
  const __mmask8 live = static_cast<__mmask8>((1u << (K - k)) - 1);
  return _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(live, x + k));
}

// Batches (q8: tiles) of fewer tokens than this make no requests for weights far ahead into L2 (the
// next panel of bf16 rows on vdpbf16ps, q8's 14 groups on), nor, on vdpbf16ps, 2 KiB ahead into
// L1: computing little a byte, they read faster when the hardware prefetcher alone streams them, as
// one token does. Cold 2816 x 1024 copies, one thread, Zen 4, `bench --batch-kernels` alternated (GB/s,
// with -> without): q8 2 tokens 18.8-21.3 -> 28.9-29.8, 4 15.3-24.1 -> 24.3-27.7, 6 21.2-27.0 ->
// 13.6-20.2, 8 18.3-20.9 -> 11.1-13.1; bf16 (the next panel's L2 requests) 2 17.1-21.1 ->
// 22.6-27.6, 4 17.7-20.3 -> 22.2-25.7, 6 19.0-22.4 -> 16.3-18.9, 8 19.2-20.8 -> 12.4-12.7. q4
// requests at every count (prefetch_ahead; without, 2 tokens read 25.9-27.7 -> 14.0-30.9). The
// FMA panels (f32 rows, bf16 without vdpbf16ps) keep their next panel's requests: f32 rows without
// them, 2 tokens 18.5-19.7 -> 18.0-23.0, 3 tokens 19.6-20.5 -> 15.8-17.5, 4 tokens 14.9-17.3 ->
// 12.4-15.8. The bf16 L1 requests (session 32, `bench --batch-kernels --batch-calls 100 --weights
// bf16 -p 2,3,4 --stream-shape S`, four alternations, kernel / read, with -> without): 4096 x
// 768, 2 tokens 0.69-0.83 -> 0.91-0.99, 3 tokens 0.63-0.86 -> 0.76-0.88, 4 tokens 0.49-0.73 ->
// 0.64-0.78; 2816 x 1024, 2 tokens 0.65-0.82 -> 0.62-0.93, 3 tokens 0.58-0.80 -> 0.49-0.77, 4
// tokens 0.50-0.74 -> 0.43-0.77: a gain for 2 tokens, 3-4 the same either way.
constexpr int64_t kPrefetchFromTokens = 5;

// Except on long rows: rows of this many columns or more (moepp-1b's and mixtral-1.8b's down
// projections, every matrix of moepp-7b) read faster with requests into L2 a fixed distance ahead
// (bf16 8 KiB from 3 tokens, q8 its 14 groups from 4; q8 with 3 tokens the same either way),
// while shorter rows still read faster without. A guess at the cause: the tokens' inputs no
// longer stay in L1 beside the weights streaming through it, and their reloads take the L1's miss
// buffers from the weights. `bench --batch-kernels --weights bf16,q8 -p 2,3,4 --stream-shape S`
// on 1536x2048, 2048x1536, 1024x2816 and 4096x768 (session 32 in docs/performance.md).
constexpr int64_t kLongRowColumns = 1536;
constexpr int64_t kLongRowsFromTokensBf16 = 3;
constexpr int64_t kLongRowsFromTokensQ8 = 4;

// M tokens in the fewest tiles of at most `max` tokens, as even as possible (the first M % n one
// larger): 8 tokens as 4 + 4, not 6 + 2. A trailing tile of 1-2 tokens takes its panel again for
// little arithmetic, and on long rows from L2. bf16 on vdpbf16ps, `bench --batch-kernels
// --batch-calls 100 --weights bf16 -p 7,8,9,13,14,16 --stream-shape S`, three alternations,
// GFLOP/s, 6 + rest -> even: 1536 x 2048, 7 tokens 130-131 -> 147-158, 8 146-151 -> 165-178, 13
// 164-172 -> 182-202, 14 175-181 -> 198-203; 4096 x 768 (noisier), 8 138-190 -> 154-194, 9
// 140-173 -> 158-197. q8/q4 tiles (up to 8 tokens, bound by their arithmetic) keep 8 + rest: even
// tiles read the same or slower (q8 9 tokens on 1536 x 2048, 255-281 -> 216-259 GOP/s).
struct TokenTiles {
  int64_t n, base, extra;
  TokenTiles(int64_t M, int64_t max)
      : n((M + max - 1) / max), base(n > 0 ? M / n : 0), extra(n > 0 ? M % n : 0) {}
  int64_t first(int64_t t) const { return t * base + std::min(t, extra); }
  int64_t size(int64_t t) const { return base + (t < extra ? 1 : 0); }
};

// The next panel's weights, fetched while this panel is multiplied: `bytes` from `p`, spread
// evenly over the `steps` iterations of a tile's loop (a burst would overflow the core's miss
// buffers). Batches otherwise alternate between reading memory (packing) and computing.
struct SpreadPrefetch {
  const char* p = nullptr;
  int64_t lines = 0, per_step = 0;  // cache lines in all; per step of the loop, rounded up
  SpreadPrefetch() = default;
  SpreadPrefetch(const void* from, int64_t bytes, int64_t steps)
      : p(static_cast<const char*>(from)), lines((bytes + 63) / 64),
        per_step((lines + std::max<int64_t>(steps, 1) - 1) / std::max<int64_t>(steps, 1)) {}
  // A panel's prefetch shared by the `n_tiles` tiles that multiply the panel before it: tile t's
  // share, so the reads are spread over the whole panel's work, not its first tile's.
  static SpreadPrefetch share(const void* from, int64_t bytes, int64_t n_steps, int64_t t, int64_t n_tiles) {
    if (from == nullptr) return {};
    const int64_t lines = (bytes + 63) / 64, l0 = t * lines / n_tiles, l1 = (t + 1) * lines / n_tiles;
    return SpreadPrefetch(static_cast<const char*>(from) + 64 * l0, 64 * (l1 - l0), n_steps);
  }
  void at(int64_t step) const {
    if (p == nullptr) return;
    for (int64_t l = step * per_step, end = std::min(lines, l + per_step); l < end; ++l)
      _mm_prefetch(p + 64 * l, _MM_HINT_T1);
  }
};

// Interleaved bf16 stores lanes of (column c + 8 + j, column c + j) pairs (tensor/weight.h):
// as f32, the high halves are chunk c and the low halves shifted up are chunk c + 8. Exact.
inline __m512 first_chunks(__m512i pairs) {
  return _mm512_castsi512_ps(_mm512_and_si512(pairs, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
}
inline __m512 second_chunks(__m512i pairs) { return _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16)); }

// One token against one block of 8 interleaved f32 rows: block = [ceil(K / 8)][8 rows][8 values],
// zero-padded past K. Prefetches 2 KiB ahead of the one stream, as the AVX2 set does.
void gemv_block8(const float* x, int64_t K, const float* block, float* y) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t k = 0; k < K; k += 8) {
    const float* p = block + k * 8;
    for (int b = 0; b < 256; b += 64) _mm_prefetch(bytes_ahead(p, 2048 + b), _MM_HINT_T0);
    const __m512 xv = input_pair(x, k, K);
    for (int i = 0; i < 4; ++i) acc[i] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(p + 16 * i), acc[i]);
  }
  _mm256_storeu_ps(y, sum_lanes8(acc));
}

// The same for bf16: block = [ceil(K / 16)][8 rows][8 pairs]; one 64-byte load holds two rows'
// 16 columns, chunk k's and chunk k + 8's (taken only below K, as the contract pads to 8).
void gemv_block8(const float* x, int64_t K, const uint16_t* block, float* y) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t k = 0; k < K; k += 16) {
    const uint16_t* p = block + k * 8;
    for (int b = 0; b < 256; b += 64) _mm_prefetch(bytes_ahead(p, 2048 + b), _MM_HINT_T0);
    __m512i wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = load_halves(p + 32 * i);
    const __m512 x_first = input_pair(x, k, K);
    for (int i = 0; i < 4; ++i) acc[i] = _mm512_fmadd_ps(x_first, first_chunks(wv[i]), acc[i]);
    if (k + 8 < K) {
      const __m512 x_second = input_pair(x, k + 8, K);
      for (int i = 0; i < 4; ++i) acc[i] = _mm512_fmadd_ps(x_second, second_chunks(wv[i]), acc[i]);
    }
  }
  _mm256_storeu_ps(y, sum_lanes8(acc));
}

// 8 weights of row n from column k as f32, zero past K, from any f32/bf16 layout.
inline __m256 weight_chunk(const Weight& w, int64_t n, int64_t k) {
  const int64_t K = w.cols;
  const bool f32 = w.dtype == DType::kF32;
  const __mmask8 live = k + 8 <= K ? __mmask8{0xff} : static_cast<__mmask8>((1u << (K - k)) - 1);
  if (f32) {
    const int64_t at = w.element_index(n, k);  // interleaved chunks are padded: a full load is safe
    return w.interleaved ? _mm256_loadu_ps(w.f32() + at) : _mm256_maskz_loadu_ps(live, w.f32() + at);
  }
  if (w.interleaved) {  // the 8 pairs holding chunk k (as their high or their low halves)
    const uint16_t* chunk_pairs = w.bf16() + w.element_index(n, k / 16 * 16) - 1;  // column k/16*16 is a high half
    const __m256i pairs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk_pairs));
    return _mm256_castsi256_ps(k % 16 == 0 ? _mm256_and_si256(pairs, _mm256_set1_epi32(static_cast<int>(0xffff0000u)))
                                           : _mm256_slli_epi32(pairs, 16));
  }
  const __m128i h = _mm_maskz_loadu_epi16(live, w.bf16() + w.element_index(n, k));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Rows [n0, n1) as f32 panels of 8 rows in the interleaved layout: panel p = rows n0 + 8p ..,
// [K8 / 8][8][8] with K8 = ceil(K / 8) * 8. A last panel's rows past n1 are zero, or (copied
// from an interleaved weight) its padding or following rows: their outputs are never stored.
void pack_panels(const Weight& w, int64_t n0, int64_t n1, float* panels) {
  const int64_t K8 = (w.cols + 7) / 8 * 8;
  const int64_t n_panels = (n1 - n0 + 7) / 8;
  if (w.interleaved && w.dtype == DType::kBF16 && n0 % 8 == 0) {  // the usual case: a plain conversion
    const int64_t K16 = w.padded_cols();  // (rows past n1: padding or the next block)
    for (int64_t p = 0; p < n_panels; ++p) {
      const uint16_t* block = w.bf16() + (n0 / 8 + p) * 8 * K16;
      float* out = panels + p * 8 * K8;
      for (int64_t k = 0; k < K8; k += 16)
        for (int i = 0; i < 4; ++i) {  // rows 2i, 2i + 1 of chunks k and k + 8
          const uint16_t* src = block + k * 8 + 32 * i;
          _mm_prefetch(bytes_ahead(src, 2048), _MM_HINT_T0);  // the first read of these weights
          const __m512i pairs = _mm512_loadu_si512(src);
          _mm512_storeu_ps(out + k * 8 + 16 * i, first_chunks(pairs));
          if (k + 8 < K8) _mm512_storeu_ps(out + (k + 8) * 8 + 16 * i, second_chunks(pairs));
        }
    }
    return;
  }
  for (int64_t p = 0; p < n_panels; ++p)
    for (int r = 0; r < 8; ++r) {
      const int64_t n = n0 + 8 * p + r;
      float* out = panels + p * 8 * K8 + r * 8;
      for (int64_t k = 0; k < K8; k += 8)
        _mm256_storeu_ps(out + k * 8, n < n1 ? weight_chunk(w, n, k) : _mm256_setzero_ps());
    }
}

// MR tokens x one panel of 8 rows; only the first `rows` outputs of each token are stored.
template <int MR>
void panel_tile(const float* x, int64_t ldx, int64_t K, const float* panel, int rows, float* y, int64_t ldy,
                const SpreadPrefetch& next) {
  __m512 acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < 4; ++i) acc[m][i] = _mm512_setzero_ps();
  const int64_t k_full = K & ~int64_t{7};
  for (int64_t k = 0; k < k_full; k += 8) {
    next.at(k / 8);
    const float* p = panel + k * 8;
    __m512 wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = _mm512_loadu_ps(p + 16 * i);
    for (int m = 0; m < MR; ++m) {
      const __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + m * ldx + k));
      for (int i = 0; i < 4; ++i) acc[m][i] = _mm512_fmadd_ps(xv, wv[i], acc[m][i]);
    }
  }
  if (k_full < K) {
    const float* p = panel + k_full * 8;
    for (int m = 0; m < MR; ++m) {
      const __m512 xv = input_pair(x + m * ldx, k_full, K);
      for (int i = 0; i < 4; ++i) acc[m][i] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(p + 16 * i), acc[m][i]);
    }
  }
  const __mmask8 stored = static_cast<__mmask8>((1u << rows) - 1);  // a copy of 8 floats was a memmove call
  for (int m = 0; m < MR; ++m) {
    _mm256_mask_storeu_ps(y + m * ldy, stored, sum_lanes8(acc[m]));
  }
}

void panel_tile_any(int mr, const float* x, int64_t ldx, int64_t K, const float* panel, int rows, float* y,
                    int64_t ldy, const SpreadPrefetch& next) {
  switch (mr) {
    case 1: return panel_tile<1>(x, ldx, K, panel, rows, y, ldy, next);
    case 2: return panel_tile<2>(x, ldx, K, panel, rows, y, ldy, next);
    case 3: return panel_tile<3>(x, ldx, K, panel, rows, y, ldy, next);
    case 4: return panel_tile<4>(x, ldx, K, panel, rows, y, ldy, next);
    case 5: return panel_tile<5>(x, ldx, K, panel, rows, y, ldy, next);
    default: return panel_tile<6>(x, ldx, K, panel, rows, y, ldy, next);
  }
}

// Where panel p of rows from n0 is stored in the weight itself (interleaved, n0 % 8 == 0), for
// prefetching it: null otherwise, or past the weight's rows. Past the caller's rows too: a thread
// that goes through a matrix in tasks of rows, in order (one thread does), reads them next, and
// stopping at the caller's rows left every task's first panel to be read cold (q8's prefetch, a
// distance ahead in the stream, runs on likewise). Stopping -> going on, `bench --batch-kernels
// --batch-calls 150 --weights bf16 -p 6,8,12,16,32 --stream-shape 2048x768` (one thread, Zen 4,
// four alternations, GFLOP/s on vdpbf16ps): 6 tokens 115-123 -> 131-139, 8 131-141 -> 148-158,
// 12 144-167 -> 162-187, 16 133-171 -> 167-187, 32 155-171 -> 165-198. Two threads in a model
// (`bench --model-shape moepp-1b -t 2 -p 64,128 --layers 4`, four alternations) gave no sign of
// the other thread's panels read twice.
const void* stored_panel(const Weight& w, int64_t n0, int64_t p) {
  if (!w.interleaved || n0 % 8 != 0 || n0 + 8 * p >= w.rows) return nullptr;
  const int64_t at = (n0 / 8 + p) * 8 * w.padded_cols();
  return w.dtype == DType::kF32 ? static_cast<const void*>(w.f32() + at) : static_cast<const void*>(w.bf16() + at);
}

#pragma GCC pop_options

// ---- bf16 x bf16 on vdpbf16ps (CPUs with AVX512_BF16) ----
//
// vdpbf16ps adds two exact bf16 products to each f32 lane, the high half's first, rounding after
// each addition: two of the contract's FMA steps, provided the inputs are bf16 values too (as
// under --dtype bf16, where every matmul input is bf16-rounded). Lane j of 16 columns from c is
// given (c + j) in its high half and (c + 8 + j) in its low half, so it adds chunk c's column
// first, as the contract does. The instruction flushes subnormal inputs and results to zero: for
// values below 1.2e-38 its bits can differ from the scalar twin's.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16,avx2,fma")

// Two chunks of 8 bf16-valued f32s as 8 lanes of bf16 pairs: (second[j] in the low half,
// first[j] in the high half).
inline __m256i pair_chunks(__m256 first, __m256 second) {
  return _mm256_or_si256(_mm256_srli_epi32(_mm256_castps_si256(second), 16),
                         _mm256_and_si256(_mm256_castps_si256(first), _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
}

inline __m256 input_chunk(const float* x, int64_t k, int64_t K) {
  if (k >= K) return _mm256_setzero_ps();
  if (k + 8 <= K) return _mm256_loadu_ps(x + k);
  return _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << (K - k)) - 1), x + k);
}

// Rows [n0, n1) as panels of 8 rows: [ceil(K / 16)][8 rows][8 lanes of pairs], the layout of
// an interleaved bf16 weight (which batches read in place), built for other weights; rows past n1
// are zero.
void pack_bf16_panels(const Weight& w, int64_t n0, int64_t n1, uint32_t* panels) {
  const int64_t K = w.cols, Q = (K + 15) / 16;
  const int64_t n_panels = (n1 - n0 + 7) / 8;
  auto chunk = [&](int64_t n, int64_t k) { return k < K ? weight_chunk(w, n, k) : _mm256_setzero_ps(); };
  for (int64_t p = 0; p < n_panels; ++p)
    for (int r = 0; r < 8; ++r) {
      const int64_t n = n0 + 8 * p + r;
      uint32_t* out = panels + p * 64 * Q + r * 8;
      for (int64_t q = 0; q < Q; ++q) {
        const __m256i v = n < n1 ? pair_chunks(chunk(n, 16 * q), chunk(n, 16 * q + 8)) : _mm256_setzero_si256();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q * 64), v);
      }
    }
}

template <int MR>
void bf16_panel_tile(const uint32_t* xp /*[M][Q][8]*/, int64_t Q, const uint32_t* panel, int rows, float* y,
                     int64_t ldy, const SpreadPrefetch& next, int64_t l1_ahead, int64_t l2_ahead) {
  __m512 acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < 4; ++i) acc[m][i] = _mm512_setzero_ps();
  for (int64_t q = 0; q < Q; ++q) {
    next.at(q);
    if (l1_ahead > 0)  // requests for the panel's first read, `l1_ahead` bytes ahead into L1
      for (int b = 0; b < 256; b += 64)
        _mm_prefetch(bytes_ahead(panel + q * 64, l1_ahead + b), _MM_HINT_T0);
    if (l2_ahead > 0)  // or into L2
      for (int b = 0; b < 256; b += 64)
        _mm_prefetch(bytes_ahead(panel + q * 64, l2_ahead + b), _MM_HINT_T1);
    __m512bh wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = (__m512bh)_mm512_loadu_si512(panel + q * 64 + 16 * i);
    for (int m = 0; m < MR; ++m) {
      const __m512bh xv =
          (__m512bh)_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + (m * Q + q) * 8)));
      for (int i = 0; i < 4; ++i) acc[m][i] = _mm512_dpbf16_ps(acc[m][i], xv, wv[i]);
    }
  }
  const __mmask8 stored = static_cast<__mmask8>((1u << rows) - 1);  // a copy of 8 floats was a memmove call
  for (int m = 0; m < MR; ++m) {
    _mm256_mask_storeu_ps(y + m * ldy, stored, sum_lanes8(acc[m]));
  }
}

// Input rows as bf16 pairs: xp = [M][Q][8], Q = ceil(K / 16). False, with xp partly written,
// when an input is not a bf16 value (its low 16 bits not zero): the check rides along with
// pairing, and f32 inputs fail it on their first chunk.
bool pair_bf16_inputs(const float* x, int64_t M, int64_t ldx, int64_t K, uint32_t* xp) {
  const int64_t Q = (K + 15) / 16;
  const __m256i low_half = _mm256_set1_epi32(0xffff);
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * ldx;
    __m256i low_bits = _mm256_setzero_si256();
    for (int64_t q = 0; q < Q; ++q) {
      const __m256 first = input_chunk(row, 16 * q, K), second = input_chunk(row, 16 * q + 8, K);
      low_bits = _mm256_or_si256(low_bits, _mm256_or_si256(_mm256_castps_si256(first), _mm256_castps_si256(second)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xp + (m * Q + q) * 8), pair_chunks(first, second));
      if (q == 0 && !_mm256_testz_si256(low_bits, low_half)) return false;
    }
    if (!_mm256_testz_si256(low_bits, low_half)) return false;
  }
  return true;
}

// Tokens of a bf16 batch multiplied by all of a call's panels before the next ones (as the f32
// panels' batch_tokens_per_block): every panel streams its tile's inputs, which in one block of
// hundreds of tokens outgrow the 1 MiB L2 of Zen 4 with the call's weights beside them. In even
// blocks of at most 64 KiB of paired inputs (inputs of up to twice that stay one block) the panels
// are read from memory once, by the first block, and from L2 by the others; calls whose weights
// would not stay in L2 (more than 768 KiB: not the 128-row tasks of a prefill) and weights packed
// panel by panel (packed again for every block) keep one block. `bench --batch-kernels --weights
// bf16 -p 64,128,512 --stream-shape S`, Zen 4, one thread (session 33 in docs/performance.md): 512
// tokens of 1024 columns 176-183 -> 201-206 GFLOP/s, of 768 columns 179-183 -> 201-204, in a spell
// of slow L3 reads; the same either way in a faster one. Blocks of 32-128 KiB about as fast as 64,
// of 256 and 512 KiB slower.
int64_t bf16_tokens_per_block(int64_t M, int64_t Q, int64_t rows) {
  constexpr int64_t kInputBlockBytes = 64 << 10, kCachedWeightBytes = 768 << 10;
  const int64_t row_bytes = 32 * Q;  // a token's paired inputs, and a weight row's bf16s
  if (M * row_bytes <= 2 * kInputBlockBytes || rows * row_bytes > kCachedWeightBytes) return M;
  const int64_t most = std::max<int64_t>(6, kInputBlockBytes / row_bytes), blocks = (M + most - 1) / most;
  return (M + blocks - 1) / blocks;  // even blocks: 128 tokens of 768 columns as 32 x 4, not 42 x 3 + 2
}

// M paired input rows (xp as above) against bf16 weight rows [n0, n1).
void bf16_panels(const uint32_t* xp, int64_t M, const Weight& w, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const int64_t Q = (w.cols + 15) / 16;
  // Interleaved weights already are panels from any multiple of 8 on (rows of the last one past
  // n1 are padding or the next block's: computed and dropped); others are packed one at a time.
  const bool in_place = w.interleaved && n0 % 8 == 0;
  thread_local std::vector<uint32_t> packed;  // one panel [Q][8][8]
  if (!in_place) packed.resize(static_cast<size_t>(64 * Q));
  // Requests for stored weights (packed panels are in cache), in the first block of tokens: from
  // kPrefetchFromTokens tokens on, the next panel is prefetched into L2 while this one is
  // multiplied, and the first tile reading a panel requests it 2 KiB ahead into L1; 3-4 tokens on
  // long rows request it 8 KiB ahead into L2; other batches leave the stream to the hardware
  // prefetcher.
  const bool long_rows = w.cols >= kLongRowColumns;
  const int64_t token_block = in_place ? bf16_tokens_per_block(M, Q, n1 - n0) : M;  // packing once
  for (int64_t mb = 0; mb < M; mb += token_block) {  // later blocks find the call's panels in L2
    const int64_t Mb = std::min(token_block, M - mb);
    const TokenTiles tiles(Mb, 6);
    for (int64_t p = 0; p * 8 < n1 - n0; ++p) {
      const int64_t r0 = n0 + 8 * p, r1 = std::min(n1, r0 + 8);
      const int rows = static_cast<int>(r1 - r0);
      const uint32_t* panel = in_place ? reinterpret_cast<const uint32_t*>(w.bf16() + (r0 / 8) * 8 * w.padded_cols())
                                       : packed.data();
      if (!in_place) pack_bf16_panels(w, r0, r1, packed.data());
      const void* next = M >= kPrefetchFromTokens && mb == 0 ? stored_panel(w, n0, p + 1) : nullptr;
      for (int64_t t = 0; t < tiles.n; ++t) {
        const int64_t m = mb + tiles.first(t);
        const uint32_t* xm = xp + m * Q * 8;
        float* out = y + m * ldy + 8 * p;
        const bool first_read = in_place && t == 0 && mb == 0;
        const int64_t l1_ahead = first_read && M >= kPrefetchFromTokens ? 2048 : 0;
        const int64_t l2_ahead =
            first_read && long_rows && M >= kLongRowsFromTokensBf16 && M < kPrefetchFromTokens ? 8192 : 0;
        const SpreadPrefetch ahead = SpreadPrefetch::share(next, 16 * 8 * Q * 2, Q, t, tiles.n);
        switch (tiles.size(t)) {
          case 1: bf16_panel_tile<1>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
          case 2: bf16_panel_tile<2>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
          case 3: bf16_panel_tile<3>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
          case 4: bf16_panel_tile<4>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
          case 5: bf16_panel_tile<5>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
          default: bf16_panel_tile<6>(xm, Q, panel, rows, out, ldy, ahead, l1_ahead, l2_ahead); break;
        }
      }
    }
  }
}

// False, computing nothing, when an input is not a bf16 value.
bool bf16_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  thread_local std::vector<uint32_t> xp;  // [M][Q][8]
  xp.resize(static_cast<size_t>(M * ((w.cols + 15) / 16) * 8));
  if (!pair_bf16_inputs(x, M, ldx, w.cols, xp.data())) return false;
  bf16_panels(xp.data(), M, w, n0, n1, y, ldy);
  return true;
}

// One bf16-valued token against one block of 8 interleaved bf16 rows as stored ([Q][8 rows][8
// pairs]), xp = its Q paired chunks. Four instructions per 256 weight bytes, against 18 for the
// f32 GEMV (split each pair, two FMAs): the out-of-order window then covers enough of the stream
// to keep memory busy (mixtral-1.8b shapes read at 0.82-0.93 of the machine's streaming read,
// against 0.62-0.66). No software prefetch: the hardware's streamer does better on one stream.
// NB blocks at once, from NB places of the matrix: NB memory streams (see one_token_blocks).
template <int NB>
void gemv_block8_paired(const uint32_t* xp, int64_t Q, const uint16_t* const* block /*[NB]*/, float* const* y /*[NB]*/) {
  __m512 acc[NB][4];
  for (int b = 0; b < NB; ++b)
    for (int i = 0; i < 4; ++i) acc[b][i] = _mm512_setzero_ps();
  for (int64_t q = 0; q < Q; ++q) {
    const __m512bh xv =
        (__m512bh)_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + q * 8)));
    for (int b = 0; b < NB; ++b)
      for (int i = 0; i < 4; ++i)
        acc[b][i] = _mm512_dpbf16_ps(acc[b][i], xv, (__m512bh)load_halves(block[b] + q * 128 + 32 * i));
  }
  for (int b = 0; b < NB; ++b) _mm256_storeu_ps(y[b], sum_lanes8(acc[b]));
}

// One token against bf16 rows [n0, n1) of an interleaved weight: false, computing nothing, when
// the input is not a bf16 value. Rows outside whole blocks of 8 go through bf16_panels.
// As one_token_streams(kBf16) streams (Zen 5 gains from four, Zen 4 from one: dot_kernels.h).
bool gemv_bf16_paired(const float* x, const Weight& w, int64_t n0, int64_t n1, float* y) {
  const int64_t Q = (w.cols + 15) / 16;
  thread_local std::vector<uint32_t> xp;  // [Q][8]
  xp.resize(static_cast<size_t>(Q * 8));
  if (!pair_bf16_inputs(x, 1, w.cols, w.cols, xp.data())) return false;
  const int64_t first = std::min(n1, (n0 + 7) / 8 * 8), last = std::max(first, n1 / 8 * 8);
  if (first > n0) bf16_panels(xp.data(), 1, w, n0, first, y, n1 - n0);
  auto block = [&](int64_t n) { return w.bf16() + (n / 8) * 8 * w.padded_cols(); };
  row_blocks_as_n_streams(one_token_streams(StreamKernel::kBf16), 8, first, (last - first) / 8, y + (first - n0),
                          [&](const int64_t* rows, float* const* outs, auto streams) {
                            constexpr int S = decltype(streams)::value;
                            const uint16_t* blocks[S];
                            for (int s = 0; s < S; ++s) blocks[s] = block(rows[s]);
                            gemv_block8_paired<S>(xp.data(), Q, blocks, outs);
                          });
  if (last < n1) bf16_panels(xp.data(), 1, w, last, n1, y + (last - n0), n1 - n0);
  return true;
}

bool avx512_pair_rows(const float* x, int64_t M, int64_t ldx, int64_t K, uint32_t* pairs) {
  static const bool bf16_native = __builtin_cpu_supports("avx512bf16");
  return bf16_native && pair_bf16_inputs(x, M, ldx, K, pairs);
}

void avx512_paired_rows(const PairedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1, float* y,
                        int64_t ldy) {
  bf16_panels(a.pairs.data() + m0 * ((a.K + 15) / 16) * 8, M, w, n0, n1, y, ldy);
}


// Attention scores of A bf16-valued queries against 8 bf16 keys: a key pair's 16 dims take one
// word permute into lanes of (dim k + j high, dim k + 8 + j low) pairs, key 2i in lanes 0-7 and
// key 2i + 1 in 8-15, and each query one vdpbf16ps per key pair: the FMA path's order (dim k + j,
// then k + 8 + j, per lane), half its multiplies and half its permutes. Subnormal values as the
// section's note says. `qd` holds each query's Q = n / 16 paired chunks twice over (16 words a
// chunk, [A][Q][16], 64-byte aligned), so that each vdpbf16ps reads its query from memory.
//
// Key pair after key pair, each with all its chunks and queries: the block's loads walk its 8
// rows in address order, which the hardware prefetcher follows (no software prefetch), and the
// queries as memory operands leave registers for all A x 4 accumulators. A chunk at a time across
// the 8 rows (the order before session 29) needed software prefetch and broadcast registers: a
// cold 2048-key head of 64 dims, 4 queries, took 12.2-12.5 us against 10.2-10.9 in this order
// (7.5-7.9 hot, against 9.1; the kernel timed alone); one query used the FMA path, and `bench
// --attention -d 2048 --attention-shape 12x1x64 --cache bf16` went from 0.73-0.74 to 0.83-0.87
// of the read beside it (one thread, three alternations, with the vector softmax maximum).
// Every loop over queries and key pairs is unrolled: GCC 12 kept the accumulators on the stack
// otherwise.
template <int A, int kQ = 0>
void dot_keys8_paired(const uint32_t* qd, const uint16_t* r /*8 keys*/, int64_t stride, int64_t Q, float* y,
                      int64_t ldy) {
  if constexpr (kQ > 0) Q = kQ;
  // Word 2l + 1 (high) of lane l < 8 takes a[l], word 2l (low) a[8 + l]; lanes 8-15 take b's.
  alignas(64) static constexpr uint16_t kPairIndex[32] = {
      8,  0,  9,  1,  10, 2,  11, 3,  12, 4,  13, 5,  14, 6,  15, 7,
      40, 32, 41, 33, 42, 34, 43, 35, 44, 36, 45, 37, 46, 38, 47, 39};
  const __m512i index = _mm512_load_si512(kPairIndex);
  __m512 acc[A][4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 4
    for (int a = 0; a < A; ++a) acc[a][i] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int64_t q = 0; q < Q; ++q) {
      const uint16_t* first = r + 2 * i * stride + 16 * q;
      const __m512i ka = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first)));
      const __m512i kb = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + stride)));
      const __m512bh kv = (__m512bh)_mm512_permutex2var_epi16(ka, index, kb);
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a)
        acc[a][i] = _mm512_dpbf16_ps(acc[a][i], (__m512bh)_mm512_load_si512(qd + (a * Q + q) * 16), kv);
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < A; ++a) _mm256_storeu_ps(y + a * ldy, sum_lanes8(acc[a]));
}

// dot_keys8_paired with the chunk count fixed for the common head sizes (64, 128), so that the
// chunk loop unrolls too.
template <int A>
void dot_keys8_paired_any(const uint32_t* qd, const uint16_t* r, int64_t stride, int64_t n, float* y, int64_t ldy) {
  if (n == 64) dot_keys8_paired<A, 4>(qd, r, stride, 4, y, ldy);
  else if (n == 128) dot_keys8_paired<A, 8>(qd, r, stride, 8, y, ldy);
  else dot_keys8_paired<A>(qd, r, stride, n / 16, y, ldy);
}

// Up to 4 queries of n dims (n a multiple of 16, at most 256) paired and doubled for
// dot_keys8_paired: false where the CPU lacks vdpbf16ps or a query is not bf16-valued.
bool pair_queries(const float* q, int64_t A, int64_t ldq, int64_t n, uint32_t* qd /*[A][n / 16][16]*/) {
  static const bool bf16_native = __builtin_cpu_supports("avx512bf16");
  alignas(32) uint32_t qp[4 * 128];  // [A][n / 16][8]
  if (!bf16_native || !pair_bf16_inputs(q, A, ldq, n, qp)) return false;
  for (int64_t c = 0; c < A * n / 16; ++c) {
    const __m256i chunk = _mm256_load_si256(reinterpret_cast<const __m256i*>(qp + 8 * c));
    _mm512_store_si512(qd + 16 * c, _mm512_inserti64x4(_mm512_castsi256_si512(chunk), chunk, 1));
  }
  return true;
}

#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")

bool cpu_has_avx512_bf16() { return __builtin_cpu_supports("avx512bf16"); }

// Whole blocks of 8 interleaved rows inside [n0, n1): [first, last).
std::pair<int64_t, int64_t> whole_blocks(int64_t n0, int64_t n1) {
  const int64_t first = (n0 + 7) / 8 * 8, last = n1 / 8 * 8;
  return first < last ? std::pair{first, last} : std::pair{n1, n1};
}

// Under 48 tokens the avx512 set takes bf16 batches on vdpbf16ps too. From 48 tokens its f32
// panels never lose; below, they win on some shapes and lose on others (packing them costs a pass
// over the weights). `moepp bench --batch-kernels --weights bf16 -p 8,16,32,48,64,128
// --stream-shape ROWSxCOLS`, in a build with panels from 1 token (Sapphire Rapids, cold weights,
// two runs; GFLOP/s on f32 panels / on vdpbf16ps with the inputs paired once a call, as
// matmul_many pairs them):
//   2048x768   16: 88-90 / 79-82   32: 105 / 82-83     48: 113 / 86-87
//   768x2048   32: 74-76 / 86-87   48: 94-95 / 88-90
//   2816x1024  32: 81-85 / 86-89   48: 93-94 / 88-89   128: 102-103 / 86-87
//   1024x2816  32: 89-91 / 87      48: 106 / 89
constexpr int64_t kPanelBatchTokens = 48;

// Tokens of a batch multiplied by all of a task's panels before the next ones: every panel
// streams its tokens' inputs from L2, and once they outgrow it, from L3 at half the FMAs' pace
// (Sapphire Rapids under KVM, `moepp bench --batch-kernels --weights bf16 -p 512 --stream-shape
// 1024x1024`, f32 panels: 94-99 GFLOP/s in one block, 122-131 in blocks of 768 KiB). Inputs of
// up to twice that stay one block: a second block packs every panel again, which cost as much as
// it saved at 128 tokens of 2816 columns. Tuned on that machine's 2 MiB L2; 768 KiB also stays
// under the 1 MiB of AMD's Zen 4 and 5.
int64_t batch_tokens_per_block(int64_t M, int64_t row_bytes) {
  constexpr int64_t kInputBlockBytes = 768 << 10;
  if (M * row_bytes <= 2 * kInputBlockBytes) return M;
  return std::max<int64_t>(6, kInputBlockBytes / row_bytes / 6 * 6);
}

// kDpbf16Batches: bf16 batches of bf16-valued inputs on vdpbf16ps (the avx512bf16 set) rather
// than on f32 panels and FMAs (the avx512 set); the same bits either way (outside subnormals).
template <bool kDpbf16Batches>
void avx512_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                 int64_t ldy) {
  const KernelSet& avx2 = *avx2_kernels();
  const int64_t K = w.cols;
  if (w.quant != WeightQuant::kNone || n1 <= n0) return avx2.rows(x, M, ldx, w, n0, n1, y, ldy);
  static const bool bf16_native = cpu_has_avx512_bf16();
  if (M == 1) {
    if (!w.interleaved) return avx2.rows(x, M, ldx, w, n0, n1, y, ldy);
    if (bf16_native && w.dtype == DType::kBF16 && gemv_bf16_paired(x, w, n0, n1, y)) return;
    const auto [first, last] = whole_blocks(n0, n1);
    if (first > n0) avx2.rows(x, 1, ldx, w, n0, first, y, ldy);
    const int64_t block_elems = 8 * w.padded_cols();
    for (int64_t n = first; n < last; n += 8) {
      if (w.dtype == DType::kF32) gemv_block8(x, K, w.f32() + (n / 8) * block_elems, y + (n - n0));
      else gemv_block8(x, K, w.bf16() + (n / 8) * block_elems, y + (n - n0));
    }
    if (last < n1) avx2.rows(x, 1, ldx, w, last, n1, y + (last - n0), ldy);
    return;
  }
  if ((kDpbf16Batches || M < kPanelBatchTokens) && bf16_native && w.dtype == DType::kBF16 &&
      bf16_rows(x, M, ldx, w, n0, n1, y, ldy))
    return;
  // Batches: panels of 8 rows, read in place when the weight already is f32 panels from n0 on
  // (rows of the last panel past n1 are computed and dropped: the layout is padded to 8 rows).
  // One panel at a time, the next one's stored weights prefetched while this one is multiplied.
  const int64_t K8 = (K + 7) / 8 * 8;
  const bool in_place = w.dtype == DType::kF32 && w.interleaved && n0 % 8 == 0;
  thread_local std::vector<float> packed;  // [8 rows][K8]
  packed.resize(static_cast<size_t>(8 * K8));
  const int64_t element_bytes = w.dtype == DType::kF32 ? 4 : 2;
  const int64_t token_block = batch_tokens_per_block(M, 4 * K8);
  for (int64_t mb = 0; mb < M; mb += token_block) {
    const int64_t Mb = std::min(token_block, M - mb);
    for (int64_t p = 0; p * 8 < n1 - n0; ++p) {
      const int64_t r0 = n0 + 8 * p, r1 = std::min(n1, r0 + 8);
      const float* panel = in_place ? w.f32() + (r0 / 8) * 8 * K8 : packed.data();
      if (!in_place) pack_panels(w, r0, r1, packed.data());
      // Later blocks find packed weights' panels in L2 or L3; f32 weights read in place may not.
      const void* next = mb == 0 || in_place ? stored_panel(w, n0, p + 1) : nullptr;
      for (int64_t m = mb; m < mb + Mb; m += 6) {
        const int mr = static_cast<int>(std::min<int64_t>(6, mb + Mb - m));
        const SpreadPrefetch ahead =
            SpreadPrefetch::share(next, 8 * K8 * element_bytes, K / 8, (m - mb) / 6, (Mb + 5) / 6);
        panel_tile_any(mr, x + m * ldx, ldx, K, panel, static_cast<int>(r1 - r0), y + m * ldy + 8 * p, ldy, ahead);
      }
    }
  }
}

// ---- q8/q4 on vpdpbusd ----

// The interleaved q8/q4 layout (tensor/weight.h; InterleavedQuant): a group of a 16-row block is
// 64-byte chunks, each one register of 16 lanes = 16 rows x 4 columns, then the 16 rows' scales.
// One vpdpbusd with the input's 4 matching bytes broadcast adds 4 columns to every row, so a group
// ends with each row's exact integer sum in its lane: one conversion, one multiply of scales and
// one FMA per 16 rows and group, where 8-lane rows took one each per 2 rows.

// A group's weights as 8 registers of unsigned bytes, register k holding columns 4k .. 4k + 3 of
// the 16 rows: q8 + 128 (the sign bit flipped); q4's nibbles, register 2k the low ones of chunk k
// (columns 8k .. 8k + 3), 2k + 1 its high ones left in place (columns 8k + 4 .. 8k + 7 times 16:
// group_sums shifts their sum back once, exactly, instead of every chunk).
template <bool kQ4>
inline void load_group(const uint8_t* group, __m512i wv[8]) {
  if constexpr (!kQ4) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < 8; ++k) wv[k] = _mm512_xor_si512(load_halves(group + 64 * k), bias);
  } else {
    const __m512i low = _mm512_set1_epi8(0x0f), high = _mm512_set1_epi8(static_cast<char>(0xf0));
    for (int k = 0; k < 4; ++k) {
      const __m512i v = load_halves(group + 64 * k);
      wv[2 * k] = _mm512_and_si512(v, low);
      wv[2 * k + 1] = _mm512_and_si512(v, high);
    }
  }
}

// Each of the 16 rows' isum_g (the contract's exact integer sum) against one input group xq: the
// sums start at minus the offset the unsigned weights add (2^7 or 2^3 times the input's group
// sum) and run as two chains, the input's 4 bytes broadcast from memory into each vpdpbusd.
template <bool kQ4>
inline __m512i group_sums(const __m512i wv[8], const int8_t* xq, int32_t group_sum) {
  auto x4 = [&](int k) { return _mm512_set1_epi32(input_word(xq, k)); };
  __m512i even = _mm512_set1_epi32(unsigned_weights_start(group_sum, kQ4)), odd = _mm512_setzero_si512();
  for (int k = 0; k < 8; k += 2) {
    even = _mm512_dpbusd_epi32(even, wv[k], x4(k));
    odd = _mm512_dpbusd_epi32(odd, wv[k + 1], x4(k + 1));
  }
  // q4: the odd registers are the high nibbles, 16 x their sum (a multiple of 16: exact shift).
  return _mm512_add_epi32(even, kQ4 ? _mm512_srai_epi32(odd, 4) : odd);
}

// acc + float(isum) * (sw * sx) for a group (the contract's step, 16 rows at once).
template <bool kQ4>
inline __m512 add_group(__m512 acc, __m512i isum, const uint8_t* group, __m512 sx) {
  const __m512 sw = _mm512_loadu_ps(reinterpret_cast<const float*>(group + InterleavedQuant<kQ4>::kValues));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sw, sx), acc);
}

// One token (row m of a) x NB blocks of 16 interleaved q8/q4 rows starting at rows n[b] (n[b] %
// 16 == 0), group by group through all NB at once: blocks from NB distant places of a matrix are
// NB memory streams (one_token_rows takes one_token_streams() of q8 or q4). On Zen 5 (8-row
// blocks, session 14), two streams read q8 and q4 at 1.02-1.04 and 0.99-1.01 of the then
// one-stream plain read, against 0.88-0.90 and 0.82-0.85 with one (`bench --stream`,
// alternated): its hardware prefetcher keeps more lines in flight for two streams than for one;
// software prefetch only slowed the one stream down. With 16-row blocks, four q8 streams read
// 0.50-0.93 (median 0.65) of today's two-stream read against 0.69-1.06 (0.88) with two (session
// 34): two there. Zen 4's does best on one.
template <int NB, bool kQ4>
void one_token_blocks(const QuantizedRows& a, int64_t m, const Weight& w, const int64_t* n /*[NB]*/,
                      float* const* y /*[NB]*/) {
  using L = InterleavedQuant<kQ4>;
  const int64_t G = a.groups;
  const uint8_t* block[NB];
  __m512 acc[NB];
  for (int b = 0; b < NB; ++b) {
    block[b] = static_cast<const uint8_t*>(w.data) + (n[b] / kQuantBlockRows) * G * L::kStride;
    acc[b] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < G; ++g) {
    const int64_t row = m * G + g;
    const int8_t* xq = a.q.data() + row * kQuantGroup;
    const __m512 sx = _mm512_set1_ps(a.scale[row]);
    for (int b = 0; b < NB; ++b) {
      const uint8_t* group = block[b] + g * L::kStride;
      __m512i wv[8];
      load_group<kQ4>(group, wv);
      acc[b] = add_group<kQ4>(acc[b], group_sums<kQ4>(wv, xq, a.group_sum[row]), group, sx);
    }
  }
  for (int b = 0; b < NB; ++b) _mm512_storeu_ps(y[b], acc[b]);
}

// A batch tile's prefetch, one group's lines at a time, about 8 KiB ahead into L2 (q8 14 groups,
// q4 25). Cold 2816 x 1024 copies, one thread, 8 / 16 tokens (Zen 4, a loop taking
// turns call by call): q8 2 KiB ahead into L1 read 169-199 / 189-224 GOP/s, its tiles' arithmetic
// (as fast as q4's warm) and its twice as many bytes adding up rather than overlapping; 8 KiB
// into L2 260-280 / 283-310 (two rounds), other L1 distances (0-8 KiB) 112-241. q4 read about the
// same either way then (4 tokens: L1 169-300, L2 197-304) and stayed 2 KiB ahead into L1 until
// session 32, when 8 KiB into L2 read faster: `bench --batch-kernels --batch-calls 100 --weights
// q4 -p 2,3,4,6,8 --stream-shape S`, three alternations, kernel / read, L1 -> L2: 4096 x 768, 3
// tokens 0.74-0.86 -> 0.85-0.88, 4 tokens 0.55-0.73 -> 0.60-0.77; 1536 x 2048, 3 tokens
// 0.65-0.71 -> 0.77-0.83, 4 tokens 0.55-0.62 -> 0.67-0.81, 6 tokens 0.38-0.46 -> 0.45-0.55; 2
// and 8 tokens within the spread.
template <bool kQ4>
inline void prefetch_ahead(const uint8_t* group) {
  using L = InterleavedQuant<kQ4>;
  constexpr int64_t kDistance = 8192 / L::kStride * L::kStride;
  for (int b = 0; b < L::kStride; b += 64) _mm_prefetch(bytes_ahead(group, kDistance + b), _MM_HINT_T1);
}

// MR tokens (rows m0.. of a, 2 <= MR <= 8) x one block of 16 interleaved q8/q4 rows starting at
// row n: each group's weights loaded and made unsigned once for all MR tokens.
template <int MR, bool kQ4>
void quant_block16(const QuantizedRows& a, int64_t m0, const Weight& w, int64_t n, float* y, int64_t ldy) {
  using L = InterleavedQuant<kQ4>;
  const int64_t G = a.groups;
  const uint8_t* block = static_cast<const uint8_t*>(w.data) + (n / kQuantBlockRows) * G * L::kStride;
  __m512 acc[MR];
  for (int m = 0; m < MR; ++m) acc[m] = _mm512_setzero_ps();
  const bool requests =
      kQ4 || MR >= kPrefetchFromTokens || (MR >= kLongRowsFromTokensQ8 && w.cols >= kLongRowColumns);
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* group = block + g * L::kStride;
    if (requests) prefetch_ahead<kQ4>(group);
    __m512i wv[8];
    load_group<kQ4>(group, wv);
    for (int m = 0; m < MR; ++m) {
      const int64_t row = (m0 + m) * G + g;
      const __m512i isum = group_sums<kQ4>(wv, a.q.data() + row * kQuantGroup, a.group_sum[row]);
      acc[m] = add_group<kQ4>(acc[m], isum, group, _mm512_set1_ps(a.scale[row]));
    }
  }
  for (int m = 0; m < MR; ++m) _mm512_storeu_ps(y + m * ldy, acc[m]);
}

template <bool kQ4>
void quant_block16_any(int mr, const QuantizedRows& a, int64_t m0, const Weight& w, int64_t n, float* y, int64_t ldy) {
  switch (mr) {
    case 1: return one_token_blocks<1, kQ4>(a, m0, w, &n, &y);
    case 2: return quant_block16<2, kQ4>(a, m0, w, n, y, ldy);
    case 3: return quant_block16<3, kQ4>(a, m0, w, n, y, ldy);
    case 4: return quant_block16<4, kQ4>(a, m0, w, n, y, ldy);
    case 5: return quant_block16<5, kQ4>(a, m0, w, n, y, ldy);
    case 6: return quant_block16<6, kQ4>(a, m0, w, n, y, ldy);
    case 7: return quant_block16<7, kQ4>(a, m0, w, n, y, ldy);
    default: return quant_block16<8, kQ4>(a, m0, w, n, y, ldy);
  }
}

// One token over whole blocks [first, last) as one_token_streams() streams of q8 or q4
// (blocks_as_streams; the counts by CPU in dot_kernels.h).
template <bool kQ4>
void one_token_rows(const QuantizedRows& a, int64_t m, const Weight& w, int64_t first, int64_t last, float* y) {
  const StreamKernel kernel = kQ4 ? StreamKernel::kQ4 : StreamKernel::kQ8;
  row_blocks_as_n_streams(one_token_streams(kernel), kQuantBlockRows, first, (last - first) / kQuantBlockRows, y,
                          [&](const int64_t* rows, float* const* outs, auto streams) {
                            one_token_blocks<decltype(streams)::value, kQ4>(a, m, w, rows, outs);
                          });
}

template <bool kQ4>
void quant_rows(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1, float* y,
                int64_t ldy) {
  constexpr int64_t R = kQuantBlockRows;
  auto whole = [&](int64_t first, int64_t last) {
    if (M == 1) return one_token_rows<kQ4>(a, m0, w, first, last, y + (first - n0));
    for (int64_t n = first; n < last; n += R)
      for (int64_t m = 0; m < M; m += 8)
        quant_block16_any<kQ4>(static_cast<int>(std::min<int64_t>(8, M - m)), a, m0 + m, w, n, y + m * ldy + (n - n0), ldy);
  };
  auto cut = [&](int64_t n) {
    for (int64_t m = 0; m < M; m += 8) {
      const int mr = static_cast<int>(std::min<int64_t>(8, M - m));
      float part[8 * R];
      quant_block16_any<kQ4>(mr, a, m0 + m, w, n, part, R);
      copy_cut_rows(part, R, mr, n, n0, n1, y + m * ldy, ldy);
    }
  };
  split_row_blocks(R, n0, n1, whole, cut);
}

void avx512_quantized_rows(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1,
                           float* y, int64_t ldy) {
  if (!w.interleaved) return avx2_kernels()->quantized_rows(a, m0, M, w, n0, n1, y, ldy);  // row-major: the reference
  if (w.quant == WeightQuant::kQ4) return quant_rows<true>(a, m0, M, w, n0, n1, y, ldy);
  quant_rows<false>(a, m0, M, w, n0, n1, y, ldy);
}

// Attention: 8 keys at a time, two per register (as the 8-row weight blocks), the query's chunk
// of 8 broadcast to both halves; leftover keys take the AVX2 dot.
void avx512_dot_rows(const float* a, const float* rows, int64_t stride, int64_t count, int64_t n, float* y) {
  const int64_t n_full = n & ~int64_t{7};
  const __mmask8 tail = static_cast<__mmask8>((1u << (n - n_full)) - 1);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    const float* r = rows + j * stride;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t k = 0; k < n_full; k += 8) {
      const __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(a + k));
      for (int i = 0; i < 4; ++i) {
        const __m512 kv = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(r + 2 * i * stride + k)),
                                             _mm256_loadu_ps(r + (2 * i + 1) * stride + k), 1);
        acc[i] = _mm512_fmadd_ps(xv, kv, acc[i]);
      }
    }
    if (n_full < n) {  // lanes past n: 0 x 0, as the contract pads
      const __m512 xv = _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(tail, a + n_full));
      for (int i = 0; i < 4; ++i) {
        const __m512 kv =
            _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(tail, r + 2 * i * stride + n_full)),
                               _mm256_maskz_loadu_ps(tail, r + (2 * i + 1) * stride + n_full), 1);
        acc[i] = _mm512_fmadd_ps(xv, kv, acc[i]);
      }
    }
    _mm256_storeu_ps(y + j, sum_lanes8(acc));
  }
  if (j < count) avx2_kernels()->dot_rows(a, rows + j * stride, stride, count - j, n, y + j);
}

// 16 outputs per register held across all rows: y[i] + c[j] * row[i], a multiply then an add
// (two roundings, as AxpyKernel), rows in order.
void avx512_axpy_rows(const float* c, const float* rows, int64_t stride, int64_t count, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 64) {
    const int64_t width = std::min<int64_t>(64, n - i);
    __mmask16 live[4];
    __m512 acc[4];
    for (int b = 0; b < 4; ++b) {
      const int64_t lanes = std::clamp<int64_t>(width - 16 * b, 0, 16);
      live[b] = static_cast<__mmask16>((1u << lanes) - 1);
      acc[b] = _mm512_maskz_loadu_ps(live[b], y + i + 16 * b);
    }
    for (int64_t j = 0; j < count; ++j) {
      const __m512 cj = _mm512_set1_ps(c[j]);
      const float* r = rows + j * stride + i;
      for (int b = 0; b < 4; ++b)
        acc[b] = _mm512_add_ps(acc[b], _mm512_mul_ps(cj, _mm512_maskz_loadu_ps(live[b], r + 16 * b)));
    }
    for (int b = 0; b < 4; ++b) _mm512_mask_storeu_ps(y + i + 16 * b, live[b], acc[b]);
  }
}

// Up to 8 elements of two cache rows as f32 in one register (row `a` low, `b` high), zeros in the
// lanes `live` leaves out (16 elements of one row for row16): f32 rows as they are, bf16 rows
// widened (their bits in the high half of each lane, exact), both rows at once.
inline __m512 row_pair8(const float* a, const float* b, __mmask8 live) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(live, a)), _mm256_maskz_loadu_ps(live, b), 1);
}
inline __m512 row_pair8(const uint16_t* a, const uint16_t* b, __mmask8 live) {
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_maskz_loadu_epi16(live, a)),
                                               _mm_maskz_loadu_epi16(live, b), 1);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(both), 16));
}
// The same for whole chunks of 8, with plain loads.
inline __m512 row_pair8(const float* a, const float* b) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}
inline __m512 row_pair8(const uint16_t* a, const uint16_t* b) {
  // Word j of the two rows to the high half of lane j, the low halves zeroed: one permute.
  const __m512i to_high = _mm512_setr_epi32(0, 1 << 16, 2 << 16, 3 << 16, 4 << 16, 5 << 16, 6 << 16, 7 << 16,
                                            8 << 16, 9 << 16, 10 << 16, 11 << 16, 12 << 16, 13 << 16, 14 << 16, 15 << 16);
  const __m256i both = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  return _mm512_castsi512_ps(
      _mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, to_high, _mm512_castsi256_si512(both)));
}
inline __m512 row16(const float* p, __mmask16 live) { return _mm512_maskz_loadu_ps(live, p); }
inline __m512 row16(const uint16_t* p, __mmask16 live) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(live, p)), 16));
}

// dot_rows for A queries at once: each pair of keys is loaded into a register once and
// multiplied by every query's chunk (A x 4 accumulators). Keys are f32 or bf16 (T).
template <int A, class T>
void dot_rows_block8(const float* q, int64_t ldq, const T* r /*8 keys*/, int64_t stride, int64_t n, float* y,
                     int64_t ldy) {
  __m512 acc[A][4];
  for (int a = 0; a < A; ++a)
    for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_setzero_ps();
  // One step: dims k .. k + 7 of the 8 keys; in the tail only the lanes `live` (past n: 0 x 0,
  // as the contract pads). Whole chunks take plain loads: with masked loads in the loop GCC 12
  // kept `acc` in memory and stored all A x 4 accumulators every step, which halved the speed.
  auto step = [&](int64_t k, auto whole, __mmask8 live) {
    constexpr bool kWhole = decltype(whole)::value;
    __m512 kv[4];
    for (int i = 0; i < 4; ++i) {
      const T* first = r + 2 * i * stride + k;
      kv[i] = kWhole ? row_pair8(first, first + stride) : row_pair8(first, first + stride, live);
    }
    for (int a = 0; a < A; ++a) {
      const float* x = q + a * ldq + k;
      const __m512 xv = _mm512_broadcast_f32x8(kWhole ? _mm256_loadu_ps(x) : _mm256_maskz_loadu_ps(live, x));
      for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_fmadd_ps(xv, kv[i], acc[a][i]);
    }
  };
  int64_t k = 0;
  if constexpr (std::is_same_v<T, uint16_t>) {
    // bf16 keys 16 dims at a time: one 32-byte load per key, and one two-source word permute per
    // 8 dims puts both keys' words in the high halves of the lanes, where row_pair8 took two
    // 16-byte loads, an insert and a permute. The same products in the same order.
    const __m512i first8 = _mm512_setr_epi32(0, 1 << 16, 2 << 16, 3 << 16, 4 << 16, 5 << 16, 6 << 16, 7 << 16,
                                             32 << 16, 33 << 16, 34 << 16, 35 << 16, 36 << 16, 37 << 16, 38 << 16,
                                             39 << 16);
    const __m512i second8 = _mm512_add_epi32(first8, _mm512_set1_epi32(8 << 16));
    for (; k + 16 <= n; k += 16) {
      __m512 lo[4], hi[4];  // dims k .. k + 7 and k + 8 .. k + 15 of keys 2i (low half), 2i + 1
      for (int i = 0; i < 4; ++i) {
        const T* first = r + 2 * i * stride + k;
        const __m512i a = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first)));
        const __m512i b = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + stride)));
        lo[i] = _mm512_castsi512_ps(_mm512_maskz_permutex2var_epi16(0xAAAAAAAAu, a, first8, b));
        hi[i] = _mm512_castsi512_ps(_mm512_maskz_permutex2var_epi16(0xAAAAAAAAu, a, second8, b));
      }
      for (int a = 0; a < A; ++a) {
        const __m512 x0 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q + a * ldq + k));
        for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_fmadd_ps(x0, lo[i], acc[a][i]);
        const __m512 x1 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q + a * ldq + k + 8));
        for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_fmadd_ps(x1, hi[i], acc[a][i]);
      }
    }
  }
  const int64_t n_full = n & ~int64_t{7};
  for (; k < n_full; k += 8) step(k, std::true_type{}, 0xff);
  if (n_full < n) step(n_full, std::false_type{}, static_cast<__mmask8>((1u << (n - n_full)) - 1));
  for (int a = 0; a < A; ++a)
    _mm256_storeu_ps(y + a * ldy, sum_lanes8(acc[a]));
}

// The 8 keys `kAhead` blocks on, requested while this block is worked on: a block reads its 8
// rows 8 dims at a time, across the rows, and the hardware prefetcher did not follow that order
// (cold 2048-key heads read at 14 GB/s against 31 for the axpy's row after row).
constexpr int64_t kAhead = 4;
template <class T>
inline void prefetch_keys(const T* r, int64_t stride, int64_t n) {
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  for (int i = 0; i < 8; ++i)
    for (int64_t b = 0; b < bytes; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(r + i * stride) + b, _MM_HINT_T0);
}

// keys8(j) for each whole block of 8 keys, j = 0, 8, ... With one query (a kv head of its own):
// block k of the first half of the keys, then block k of the second, two memory streams as the
// one-token weight products read (each score is its own key's dot, so the order of the blocks
// changes no bits). `bench --attention -d 2048`, alternated: 12x1x64 bf16 308-312 -> 291-295 us a
// layer, f32 601-620 -> 538-541; with 4 queries a kv head (4x4x64) bf16 went 127-131 -> 138-142,
// so grouped queries keep one stream. Four streams measured the same as two.
template <class Keys8>
void for_key_blocks(int64_t blocks, int64_t queries, Keys8 keys8) {
  if (queries == 1)
    blocks_as_streams<2>(blocks, [&](const int64_t* k, auto streams) {
      for (int s = 0; s < decltype(streams)::value; ++s) keys8(8 * k[s]);
    });
  else
    for (int64_t k = 0; k < blocks; ++k) keys8(8 * k);
}

template <class T>
void dot_rows_block_of(const float* q, int64_t A, int64_t ldq, const T* rows, int64_t stride, int64_t count, int64_t n,
                       float* y, int64_t ldy) {
  for (int64_t a0 = 0; a0 < A; a0 += 4) {
    const int64_t block = std::min<int64_t>(4, A - a0);
    const float* qa = q + a0 * ldq;
    float* ya = y + a0 * ldy;
    // bf16-valued queries on bf16 keys (a bf16 forward): vdpbf16ps, the same bits.
    alignas(64) uint32_t qd[4 * 256];
    bool paired = false;
    if constexpr (std::is_same_v<T, uint16_t>)
      paired = n % 16 == 0 && n <= 256 && pair_queries(qa, block, ldq, n, qd);
    // The paired blocks walk their rows in address order and need no requests (dot_keys8_paired);
    // the FMA path below reads across its 8 rows, which the hardware prefetcher did not follow.
    auto keys8 = [&](int64_t j) {  // keys j .. j + 7 (the FMA path: the 8 keys kAhead blocks on requested)
      const T* r = rows + j * stride;
      if constexpr (std::is_same_v<T, uint16_t>)
        if (paired) {
          switch (block) {
            case 1: dot_keys8_paired_any<1>(qd, r, stride, n, ya + j, ldy); return;
            case 2: dot_keys8_paired_any<2>(qd, r, stride, n, ya + j, ldy); return;
            case 3: dot_keys8_paired_any<3>(qd, r, stride, n, ya + j, ldy); return;
            default: dot_keys8_paired_any<4>(qd, r, stride, n, ya + j, ldy); return;
          }
        }
      if (j + (kAhead + 1) * 8 <= count) prefetch_keys(r + kAhead * 8 * stride, stride, n);
      switch (block) {
        case 1: dot_rows_block8<1>(qa, ldq, r, stride, n, ya + j, ldy); break;
        case 2: dot_rows_block8<2>(qa, ldq, r, stride, n, ya + j, ldy); break;
        case 3: dot_rows_block8<3>(qa, ldq, r, stride, n, ya + j, ldy); break;
        default: dot_rows_block8<4>(qa, ldq, r, stride, n, ya + j, ldy); break;
      }
    };
    const int64_t blocks = count / 8;
    for_key_blocks(blocks, block, keys8);
    const int64_t j = 8 * blocks;
    if (j == count) continue;  // the last count % 8 keys: the AVX2 set's dot per query and key
    if constexpr (std::is_same_v<T, float>)
      avx2_kernels()->dot_rows_block(qa, block, ldq, rows + j * stride, stride, count - j, n, ya + j, ldy);
    else
      avx2_kernels()->dot_rows_block_bf16(qa, block, ldq, rows + j * stride, stride, count - j, n, ya + j, ldy);
  }
}

void avx512_dot_rows_block(const float* q, int64_t A, int64_t ldq, const float* rows, int64_t stride, int64_t count,
                           int64_t n, float* y, int64_t ldy) {
  dot_rows_block_of(q, A, ldq, rows, stride, count, n, y, ldy);
}

void avx512_dot_rows_block_bf16(const float* q, int64_t A, int64_t ldq, const uint16_t* rows, int64_t stride,
                                int64_t count, int64_t n, float* y, int64_t ldy) {
  dot_rows_block_of(q, A, ldq, rows, stride, count, n, y, ldy);
}

// A whole 64-wide chunk of bf16 rows: 32 values a load, widened by interleaving zeros below them
// (one in-lane unpack per 16, no cross-lane widening and shift). The unpacks leave dims in the
// order {0-3, 8-11, 16-19, 24-27} (lo) and {4-7, 12-15, ..} (hi) of each 32; y is loaded into
// that order and stored back from it. Each output is still y + c * v per row in row order, so
// the order of the lanes changes no bits.
template <int A>
void axpy_rows_block_bf16_chunk(const float* c, int64_t ldc, const uint16_t* rows, int64_t stride, int64_t count,
                                float* y /*64 wide*/, int64_t ldy) {
  const __m512i to_lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const __m512i to_hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const __m512i back_first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i back_second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  __m512 acc[A][4];  // [half of the chunk][lo, hi]
  for (int a = 0; a < A; ++a)
    for (int h = 0; h < 2; ++h) {
      const __m512 first = _mm512_loadu_ps(y + a * ldy + 32 * h), second = _mm512_loadu_ps(y + a * ldy + 32 * h + 16);
      acc[a][2 * h] = _mm512_permutex2var_ps(first, to_lo, second);
      acc[a][2 * h + 1] = _mm512_permutex2var_ps(first, to_hi, second);
    }
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t j = 0; j < count; ++j) {
    const uint16_t* r = rows + j * stride;
    __m512 v[4];
    for (int h = 0; h < 2; ++h) {
      const __m512i bits = load_halves(r + 32 * h);
      v[2 * h] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, bits));
      v[2 * h + 1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, bits));
    }
    for (int a = 0; a < A; ++a) {
      const __m512 cj = _mm512_set1_ps(c[a * ldc + j]);
      for (int b = 0; b < 4; ++b) acc[a][b] = _mm512_add_ps(acc[a][b], _mm512_mul_ps(cj, v[b]));
    }
  }
  for (int a = 0; a < A; ++a)
    for (int h = 0; h < 2; ++h) {
      _mm512_storeu_ps(y + a * ldy + 32 * h, _mm512_permutex2var_ps(acc[a][2 * h], back_first, acc[a][2 * h + 1]));
      _mm512_storeu_ps(y + a * ldy + 32 * h + 16,
                       _mm512_permutex2var_ps(acc[a][2 * h], back_second, acc[a][2 * h + 1]));
    }
}

// 16 * P whole columns of f32 or bf16 rows, with plain loads: under masked loads a cold 2048-row
// f32 head streamed at 9 GB/s against 31 for the bf16 rows' plain ones (the prefetcher does not
// seem to follow masked loads).
inline __m512 row16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 row16(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
template <int A, int P, class T>
void axpy_rows_block_columns(const float* c, int64_t ldc, const T* rows, int64_t stride, int64_t count,
                             float* y /*16 * P wide*/, int64_t ldy) {
  if (count == 0) return;
  __m512 acc[A][P];
  // Row 0 adds to y as loaded: accumulators that start as plain loads GCC 12 kept in memory
  // (stored every row) in some instances.
  auto step = [&](int64_t j, auto first) {
    const T* r = rows + j * stride;
    __m512 v[P];
    for (int b = 0; b < P; ++b) v[b] = row16(r + 16 * b);
    for (int a = 0; a < A; ++a) {
      const __m512 cj = _mm512_set1_ps(c[a * ldc + j]);
      for (int b = 0; b < P; ++b) {
        const __m512 base = decltype(first)::value ? _mm512_loadu_ps(y + a * ldy + 16 * b) : acc[a][b];
        acc[a][b] = _mm512_add_ps(base, _mm512_mul_ps(cj, v[b]));
      }
    }
  };
  step(0, std::true_type{});
  for (int64_t j = 1; j < count; ++j) step(j, std::false_type{});
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < P; ++b) _mm512_storeu_ps(y + a * ldy + 16 * b, acc[a][b]);
}

// axpy_rows for A queries at once: each value row's 64 elements are loaded once for all of them.
template <int A, class T>
void axpy_rows_block(const float* c, int64_t ldc, const T* rows, int64_t stride, int64_t count, float* y,
                     int64_t ldy, int64_t n) {
  for (int64_t i = 0; i < n; i += 64) {
    const int64_t width = std::min<int64_t>(64, n - i);
    switch (width % 16 == 0 ? width / 16 : 0) {  // whole 16-column pieces: plain loads
      case 4:
        if constexpr (std::is_same_v<T, uint16_t>) axpy_rows_block_bf16_chunk<A>(c, ldc, rows + i, stride, count, y + i, ldy);
        else axpy_rows_block_columns<A, 4>(c, ldc, rows + i, stride, count, y + i, ldy);
        continue;
      case 3: axpy_rows_block_columns<A, 3>(c, ldc, rows + i, stride, count, y + i, ldy); continue;
      case 2: axpy_rows_block_columns<A, 2>(c, ldc, rows + i, stride, count, y + i, ldy); continue;
      case 1: axpy_rows_block_columns<A, 1>(c, ldc, rows + i, stride, count, y + i, ldy); continue;
      default: break;
    }
    __mmask16 live[4];
    __m512 acc[A][4];
    for (int b = 0; b < 4; ++b) {
      const int64_t lanes = std::clamp<int64_t>(width - 16 * b, 0, 16);
      live[b] = static_cast<__mmask16>((1u << lanes) - 1);
      for (int a = 0; a < A; ++a) acc[a][b] = _mm512_maskz_loadu_ps(live[b], y + a * ldy + i + 16 * b);
    }
    for (int64_t j = 0; j < count; ++j) {
      const T* r = rows + j * stride + i;
      __m512 v[4];
      for (int b = 0; b < 4; ++b) v[b] = row16(r + 16 * b, live[b]);
      for (int a = 0; a < A; ++a) {
        const __m512 cj = _mm512_set1_ps(c[a * ldc + j]);
        for (int b = 0; b < 4; ++b) acc[a][b] = _mm512_add_ps(acc[a][b], _mm512_mul_ps(cj, v[b]));
      }
    }
    for (int b = 0; b < 4; ++b)
      for (int a = 0; a < A; ++a) _mm512_mask_storeu_ps(y + a * ldy + i + 16 * b, live[b], acc[a][b]);
  }
}

// ---- Probabilities times bf16 values on vdpbf16ps ----
//
// In a bf16 forward the probabilities are bf16 values (attention rounds them) and so are a bf16
// cache's values: each product c * v is exact in f32, so the contract's y + c * v (a multiply,
// then an add) is one rounding of y plus an exact product, which is what each half of a
// vdpbf16ps lane does. Rows j and j + 1 go in one lane as (row j high, row j + 1 low) against
// (c_j high, c_j+1 low): the high half is added first, rows in order. One instruction per 16
// outputs and two rows, where the multiply-and-add path takes four (a mul and an add per row).
// Subnormals as the bf16 section's note says.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16,avx2,fma")

// cp[a * ldcp + i] = (c_2i high, c_2i+1 low) of query a's probabilities c[a * ldc ..], i < pairs:
// false, with cp partly written, if one of the 2 * pairs values is not a bf16 value.
bool pair_probabilities(const float* c, int64_t A, int64_t ldc, int64_t pairs, uint32_t* cp, int64_t ldcp) {
  // Word 2l (low) of pair lane l takes c_2l+1's high word (word 4l + 3 of the 32 floats' words),
  // word 2l + 1 (high) takes c_2l's (word 4l + 1).
  alignas(64) static constexpr uint16_t kHighWords[32] = {3,  1,  7,  5,  11, 9,  15, 13, 19, 17, 23,
                                                          21, 27, 25, 31, 29, 35, 33, 39, 37, 43, 41,
                                                          47, 45, 51, 49, 55, 53, 59, 57, 63, 61};
  const __m512i index = _mm512_load_si512(kHighWords);
  const __m512i low_half = _mm512_set1_epi32(0xffff);
  __m512i low_bits = _mm512_setzero_si512();
  for (int64_t a = 0; a < A; ++a) {
    const float* ca = c + a * ldc;
    for (int64_t i = 0; i < pairs; i += 16) {
      const int64_t values = std::min<int64_t>(32, 2 * (pairs - i));  // floats of c from 2i on
      const __mmask16 first = static_cast<__mmask16>(values >= 16 ? 0xffff : (1u << values) - 1);
      const __mmask16 second = static_cast<__mmask16>(values >= 32 ? 0xffff : values > 16 ? (1u << (values - 16)) - 1 : 0);
      const __m512i x0 = _mm512_castps_si512(_mm512_maskz_loadu_ps(first, ca + 2 * i));
      const __m512i x1 = _mm512_castps_si512(_mm512_maskz_loadu_ps(second, ca + 2 * i + 16));
      low_bits = _mm512_or_si512(low_bits, _mm512_or_si512(x0, x1));
      const __mmask16 stored = static_cast<__mmask16>(pairs - i >= 16 ? 0xffff : (1u << (pairs - i)) - 1);
      _mm512_mask_storeu_epi32(cp + a * ldcp + i, stored, _mm512_permutex2var_epi16(x0, index, x1));
      // An f32 forward's probabilities fail on their first values: stop before pairing the rest.
      if (a == 0 && i == 0 && _mm512_test_epi32_mask(low_bits, low_half) != 0) return false;
    }
  }
  return _mm512_test_epi32_mask(low_bits, low_half) == 0;
}

// y (H * 32 wide) += rows 0 .. 2 * pairs - 1 of bf16 values times A queries' paired
// probabilities, in row order. Each 32 outputs are kept in the unpacks' order, {0-3, 8-11, 16-19,
// 24-27} and {4-7, 12-15, ..}, as axpy_rows_block_bf16_chunk keeps them.
template <int A, int H>
void axpy_pairs_bf16(const uint32_t* cp, int64_t ldcp, const uint16_t* rows, int64_t stride, int64_t pairs,
                     float* y, int64_t ldy) {
  const __m512i to_lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const __m512i to_hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const __m512i back_first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i back_second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  __m512 acc[A][2 * H];  // [32-wide half][lo, hi]
  for (int a = 0; a < A; ++a)
    for (int h = 0; h < H; ++h) {
      const __m512 first = _mm512_loadu_ps(y + a * ldy + 32 * h), second = _mm512_loadu_ps(y + a * ldy + 32 * h + 16);
      acc[a][2 * h] = _mm512_permutex2var_ps(first, to_lo, second);
      acc[a][2 * h + 1] = _mm512_permutex2var_ps(first, to_hi, second);
    }
  for (int64_t i = 0; i < pairs; ++i) {
    const uint16_t* r = rows + 2 * i * stride;
    __m512bh v[2 * H];
    for (int h = 0; h < H; ++h) {
      const __m512i first = load_halves(r + 32 * h);
      const __m512i second = load_halves(r + stride + 32 * h);
      v[2 * h] = (__m512bh)_mm512_unpacklo_epi16(second, first);
      v[2 * h + 1] = (__m512bh)_mm512_unpackhi_epi16(second, first);
    }
    for (int a = 0; a < A; ++a) {
      const __m512bh cw = (__m512bh)_mm512_set1_epi32(static_cast<int>(cp[a * ldcp + i]));
      for (int b = 0; b < 2 * H; ++b) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], cw, v[b]);
    }
  }
  for (int a = 0; a < A; ++a)
    for (int h = 0; h < H; ++h) {
      _mm512_storeu_ps(y + a * ldy + 32 * h, _mm512_permutex2var_ps(acc[a][2 * h], back_first, acc[a][2 * h + 1]));
      _mm512_storeu_ps(y + a * ldy + 32 * h + 16,
                       _mm512_permutex2var_ps(acc[a][2 * h], back_second, acc[a][2 * h + 1]));
    }
}

// axpy_rows_block on bf16 rows n % 32 == 0 wide for bf16-valued probabilities (up to 4 queries
// of a block): whole row pairs on vdpbf16ps, an odd last row as the multiply-and-add path adds
// it. False, computing nothing, where the CPU lacks vdpbf16ps, n % 32 != 0, there is no whole
// pair (count < 2) or a probability is not a bf16 value.
template <int A>
bool axpy_rows_block_paired(const float* c, int64_t ldc, const uint16_t* rows, int64_t stride, int64_t count, float* y,
                            int64_t ldy, int64_t n) {
  static const bool bf16_native = __builtin_cpu_supports("avx512bf16");
  const int64_t pairs = count / 2;
  if (!bf16_native || n % 32 != 0 || pairs == 0) return false;
  thread_local std::vector<uint32_t> cp;  // [A, pairs]
  cp.resize(static_cast<size_t>(A * pairs));
  if (!pair_probabilities(c, A, ldc, pairs, cp.data(), pairs)) return false;
  for (int64_t i = 0; i < n; i += 64) {
    if (n - i >= 64) axpy_pairs_bf16<A, 2>(cp.data(), pairs, rows + i, stride, pairs, y + i, ldy);
    else axpy_pairs_bf16<A, 1>(cp.data(), pairs, rows + i, stride, pairs, y + i, ldy);
  }
  return true;
}

#pragma GCC pop_options

template <class T>
void axpy_rows_block_of(const float* c, int64_t A, int64_t ldc, const T* rows, int64_t stride, int64_t count, float* y,
                        int64_t ldy, int64_t n) {
  for_query_blocks_of_4(A, [&](auto queries, int64_t a0) {
    constexpr int B = decltype(queries)::value;
    const float* ca = c + a0 * ldc;
    float* ya = y + a0 * ldy;
    if constexpr (std::is_same_v<T, uint16_t>)
      if (axpy_rows_block_paired<B>(ca, ldc, rows, stride, count, ya, ldy, n)) {
        if (count % 2 != 0)  // the last row, after all the pairs
          axpy_rows_block<B>(ca + count - 1, ldc, rows + (count - 1) * stride, stride, 1, ya, ldy, n);
        return;
      }
    axpy_rows_block<B>(ca, ldc, rows, stride, count, ya, ldy, n);
  });
}

void avx512_axpy_rows_block(const float* c, int64_t A, int64_t ldc, const float* rows, int64_t stride, int64_t count,
                            float* y, int64_t ldy, int64_t n) {
  axpy_rows_block_of(c, A, ldc, rows, stride, count, y, ldy, n);
}

void avx512_axpy_rows_block_bf16(const float* c, int64_t A, int64_t ldc, const uint16_t* rows, int64_t stride,
                                 int64_t count, float* y, int64_t ldy, int64_t n) {
  axpy_rows_block_of(c, A, ldc, rows, stride, count, y, ldy, n);
}

// 16 values a step (one sign-extending load, a convert, one multiply by the group's scale; 16
// values never straddle two groups of 32) with plain loads and stores, a row's tail under a mask:
// with every step masked the q8 attention probe ran at half the speed (masked stores are slow on
// this project's Zen 5).
void avx512_dequantize_kv_rows(const int8_t* q, const float* scales, int64_t rows, int64_t n, float* out) {
  const int64_t groups = (n + kQuantGroup - 1) / kQuantGroup;
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* qr = q + r * n;
    float* o = out + r * n;
    const float* s = scales + r * groups;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + i)));
      _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(s[i / kQuantGroup])));
    }
    if (i < n) {
      const __mmask16 live = static_cast<__mmask16>((1u << (n - i)) - 1);
      const __m512i v = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(live, qr + i));
      _mm512_mask_storeu_ps(o + i, live, _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(s[i / kQuantGroup])));
    }
  }
}

// ---- q8 KV cache rows (ops/kv_quant.h) widened in registers ----
// Each value is float(q) * its group's scale, as dequantize_kv_rows computes it, then the f32
// kernels' steps in their order: the same bits as those kernels on the widened rows, without the
// pass that writes them to memory and reads them back.

// dot_rows_block8 on 8 q8 keys (n % 16 == 0): keys 2i and 2i + 1 share a register (low, high
// half), 16 dims a step as two registers of 8 (dims k .. k + 7, then k + 8 .. k + 15).
template <int A>
void dot_q8_keys8(const float* q, int64_t ldq, const int8_t* r /*8 keys, n apart*/, const float* s /*their scales*/,
                  int64_t n, float* y, int64_t ldy) {
  const int64_t groups = (n + kQuantGroup - 1) / kQuantGroup;
  __m512 acc[A][4];
  for (int a = 0; a < A; ++a)
    for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; k += 16) {
    const int64_t g = k / kQuantGroup;
    __m512 lo[4], hi[4];
    for (int i = 0; i < 4; ++i) {
      const int8_t* first = r + 2 * i * n + k;
      const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(first));
      const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + n));
      const __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(s[2 * i * groups + g]),
                                              _mm256_set1_ps(s[(2 * i + 1) * groups + g]), 1);
      lo[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpacklo_epi64(va, vb))), scale);
      hi[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpackhi_epi64(va, vb))), scale);
    }
    for (int a = 0; a < A; ++a) {
      const __m512 x0 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q + a * ldq + k));
      for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_fmadd_ps(x0, lo[i], acc[a][i]);
      const __m512 x1 = _mm512_broadcast_f32x8(_mm256_loadu_ps(q + a * ldq + k + 8));
      for (int i = 0; i < 4; ++i) acc[a][i] = _mm512_fmadd_ps(x1, hi[i], acc[a][i]);
    }
  }
  for (int a = 0; a < A; ++a) _mm256_storeu_ps(y + a * ldy, sum_lanes8(acc[a]));
}

// Whole blocks of 8 keys as dot_rows_block_of takes them (keys kAhead blocks on requested; one
// query: two streams), the last count % 8 keys widened into a buffer for the f32 kernel.
bool avx512_dot_rows_block_q8(const float* q, int64_t A, int64_t ldq, const int8_t* rows, const float* scales,
                              int64_t count, int64_t n, float* y, int64_t ldy) {
  if (n % 16 != 0 || n > 256) return false;
  const int64_t groups = (n + kQuantGroup - 1) / kQuantGroup, blocks = count / 8;
  for_query_blocks_of_4(A, [&](auto queries, int64_t a0) {
    for_key_blocks(blocks, decltype(queries)::value, [&](int64_t j) {
      const int8_t* r = rows + j * n;
      if (j + (kAhead + 1) * 8 <= count) prefetch_keys(r + kAhead * 8 * n, n, n);
      dot_q8_keys8<decltype(queries)::value>(q + a0 * ldq, ldq, r, scales + j * groups, n, y + a0 * ldy + j, ldy);
    });
  });
  const int64_t j = 8 * blocks;
  if (j < count) {
    alignas(64) float tail[7 * 256];
    avx512_dequantize_kv_rows(rows + j * n, scales + j * groups, count - j, n, tail);
    avx512_dot_rows_block(q, A, ldq, tail, n, count - j, n, y + j, ldy);
  }
  return true;
}

// axpy_rows_block on q8 rows, 64 columns at a time (n % 64 == 0): each row's 64 values widened
// once for all A queries, then y + c * v per row in row order.
template <int A>
void axpy_q8_chunk64(const float* c, int64_t ldc, const int8_t* rows, const float* scales, int64_t n, int64_t count,
                     float* y /*64 wide*/, int64_t ldy, int64_t column) {
  const int64_t groups = n / kQuantGroup, g = column / kQuantGroup;
  __m512 acc[A][4];
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < 4; ++b) acc[a][b] = _mm512_loadu_ps(y + a * ldy + 16 * b);
  for (int64_t j = 0; j < count; ++j) {
    const int8_t* r = rows + j * n + column;
    const __m512 s0 = _mm512_set1_ps(scales[j * groups + g]), s1 = _mm512_set1_ps(scales[j * groups + g + 1]);
    __m512 v[4];
    for (int b = 0; b < 4; ++b)
      v[b] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 16 * b)))),
                           b < 2 ? s0 : s1);
    for (int a = 0; a < A; ++a) {
      const __m512 cj = _mm512_set1_ps(c[a * ldc + j]);
      for (int b = 0; b < 4; ++b) acc[a][b] = _mm512_add_ps(acc[a][b], _mm512_mul_ps(cj, v[b]));
    }
  }
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < 4; ++b) _mm512_storeu_ps(y + a * ldy + 16 * b, acc[a][b]);
}

bool avx512_axpy_rows_block_q8(const float* c, int64_t A, int64_t ldc, const int8_t* rows, const float* scales,
                               int64_t count, float* y, int64_t ldy, int64_t n) {
  if (n % 64 != 0) return false;
  for_query_blocks_of_4(A, [&](auto queries, int64_t a0) {
    for (int64_t i = 0; i < n; i += 64)
      axpy_q8_chunk64<decltype(queries)::value>(c + a0 * ldc, ldc, rows, scales, n, count, y + a0 * ldy + i, ldy, i);
  });
  return true;
}

// exp_f32 on 16 lanes: the scalar reference's operations in the same order.
inline __m512 exp16(__m512 x) {
  namespace c = exp_f32_constants;
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(c::kMin)), _mm512_set1_ps(c::kMax));
  const __m512 round = _mm512_set1_ps(c::kRound);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(c::kLog2e)), round), round);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-c::kLn2Hi), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-c::kLn2Lo), r);
  __m512 poly = _mm512_set1_ps(c::kP[0]);
  for (int i = 1; i < 6; ++i) poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(c::kP[i]));
  const __m512 e_r = _mm512_add_ps(_mm512_fmadd_ps(poly, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i ni = _mm512_cvttps_epi32(n), n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  const __m512 result = _mm512_mul_ps(_mm512_mul_ps(e_r, s1), s2);
  return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN stays itself
}

// 16 values per step: the first 8 go to the 8 double lanes, then the next 8, as the contract's
// lane j takes y[j], y[j + 8], ...
double avx512_exp_sum(const float* x, float shift, float* y, int64_t n) {
  __m512d lanes = _mm512_setzero_pd();
  const __m512 sv = _mm512_set1_ps(shift);
  auto add = [&lanes](__m512 e) {
    lanes = _mm512_add_pd(lanes, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    lanes = _mm512_add_pd(lanes, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  };
  // Whole steps two at a time with plain loads and stores (the two exponentials overlap; a mask
  // chosen inside the loop cost a third of the time), then the rest under a mask.
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sv));
    const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), sv));
    _mm512_storeu_ps(y + i, e0);
    _mm512_storeu_ps(y + i + 16, e1);
    add(e0);
    add(e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, x + i), sv)));
    _mm512_mask_storeu_ps(y + i, live, e);  // lanes past n are +0 and add nothing
    add(e);
  }
  alignas(64) double l[8];
  _mm512_store_pd(l, lanes);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

void avx512_silu(const float* x, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);  // -x flips the sign bit, NaN too
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // two at a time, as exp_sum: the exponentials overlap
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 e0 = exp16(_mm512_xor_ps(v0, sign)), e1 = exp16(_mm512_xor_ps(v1, sign));
    _mm512_storeu_ps(y + i, _mm512_div_ps(v0, _mm512_add_ps(one, e0)));
    _mm512_storeu_ps(y + i + 16, _mm512_div_ps(v1, _mm512_add_ps(one, e1)));
  }
  for (; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    _mm512_mask_storeu_ps(y + i, live, _mm512_div_ps(v, _mm512_add_ps(one, exp16(_mm512_xor_ps(v, sign)))));
  }
}

template <bool kDpbf16Batches>
void avx512_any_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                     int64_t ldy) {
  if (w.quant == WeightQuant::kNone) return avx512_rows<kDpbf16Batches>(x, M, ldx, w, n0, n1, y, ldy);
  rows_on_quantized_inputs(avx512_quantized_rows, x, M, ldx, w, n0, n1, y, ldy);
}

#pragma GCC pop_options

bool cpu_has_avx512_set() {
  return avx2_kernels() != nullptr && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni");
}

}  // namespace

// Both sets take one-token products and attention on vdpbf16ps where the CPU has it (memory
// bound: fewer instructions per byte keep more of the stream in flight); they differ in batches.
const KernelSet* avx512_kernels() {
  static const bool ok = cpu_has_avx512_set();
  if (!ok) return nullptr;
  // Attention's single vector dot and axpy: 8-lane work that gains nothing from wider registers.
  static const KernelSet set{"avx512",
                             avx512_any_rows<false>,
                             avx512_quantized_rows,
                             avx2_kernels()->quantize_rows,
                             avx2_kernels()->dot,
                             avx2_kernels()->axpy, avx512_dot_rows, avx512_axpy_rows,     avx512_dot_rows_block,
                             avx512_axpy_rows_block, avx512_exp_sum, avx512_dot_rows_block_bf16, avx512_axpy_rows_block_bf16,
                             avx512_pair_rows,       avx512_paired_rows,    avx512_silu,
                             avx512_dequantize_kv_rows, avx512_dot_rows_block_q8, avx512_axpy_rows_block_q8,
                             kPanelBatchTokens};
  return &set;
}

const KernelSet* avx512bf16_kernels() {
  static const bool ok = cpu_has_avx512_set() && cpu_has_avx512_bf16();
  if (!ok) return nullptr;
  static const KernelSet set = [] {
    KernelSet s = *avx512_kernels();
    s.isa = "avx512bf16";
    s.rows = avx512_any_rows<true>;
    s.paired_below = std::numeric_limits<int64_t>::max();
    return s;
  }();
  return &set;
}

}  // namespace moepp::kernels
