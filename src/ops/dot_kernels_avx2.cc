// AVX2 + FMA kernels. Written with intrinsics under a function-level target (no global -mavx2, so
// inline code from shared headers is never compiled for AVX2 by this file) and chosen at run time
// by dot_kernels.cc. Same bits as the scalar reference: see the contract there.
//
// Tiles of MR input rows x NR weight rows keep MR * NR 8-lane accumulators in registers (4 x 3 = 12
// of the 16 ymm registers for batches, 1 x 8 for one token). Interleaved bf16 rows: one token
// takes bf16_pair_tile (each pair of chunks loaded once), a few tokens bf16_pair_blocks (blocks in
// chunks reused from L1: 2-13 tokens, 2-23 where K > 877), more the rows converted once to padded
// f32 (exact), so the conversion is not repeated per tile of tokens; row-major bf16 rows are
// converted from 5 tokens.
// q8/q4 weights take the integer path (vpmaddubsw; vpdpbusd in the avx2vnni set).
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/block_streams.h"
#include "ops/dot_kernels.h"
#include "ops/exp_f32.h"
#include "ops/prefetch.h"

namespace moepp::kernels {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Loaders give 8 consecutive weights of row n as f32: load() for a full chunk (k + 8 <= K),
// load_tail() for the last, partial one (lanes past K are 0).
struct TailFromElements {
  const Weight* w;
  __m256 load_tail(int64_t n, int64_t k) const {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; k + j < w->cols && j < 8; ++j) t[j] = weight_element(*w, n, k + j);
    return _mm256_load_ps(t);
  }
};

// All ones in the lanes below `live` (any value; none at or below 0, all at 8 or more): the mask
// that loads and stores a row's last, partial chunk.
inline __m256i first_lanes(int64_t live) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(live, 0, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 f32x8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 f32x8(const uint16_t* p) {  // 8 bf16 -> f32, exact
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The f32 values of a register of bf16 pairs: the high halves (masked), the low ones (shifted up).
inline __m256 high_halves_of(__m256i pairs, __m256i high_halves) {
  return _mm256_castsi256_ps(_mm256_and_si256(pairs, high_halves));
}
inline __m256 low_halves_of(__m256i pairs) { return _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16)); }

// Row-major f32 or bf16 rows. NR rows are NR interleaved memory streams, which the hardware
// prefetcher serves poorly (measured 6 GB/s instead of 14 for bf16 rows): prefetch() fetches the
// next tile's rows, one line per row per line consumed.
template <class E>
struct RowMajorLoader : TailFromElements {
  static constexpr int64_t kColumnsPerLine = 64 / sizeof(E);
  const E* base() const { return static_cast<const E*>(w->data); }
  const E* address(int64_t n, int64_t k) const { return base() + n * w->cols + k; }
  // For requests only: row n may be past the last (prefetch.h).
  const char* request_address(int64_t n, int64_t k) const {
    return bytes_ahead(base(), static_cast<int64_t>(sizeof(E)) * (n * w->cols + k));
  }
  __m256 load(int64_t n, int64_t k) const { return f32x8(address(n, k)); }
  template <int NR>
  void prefetch(int64_t n, int64_t k) const {
    if (k % kColumnsPerLine == 0)
      for (int r = 0; r < NR; ++r) _mm_prefetch(request_address(n + NR + r, k), _MM_HINT_T0);
  }
};

// interleaved rows (tensor/weight.h): a tile of 8 aligned rows reads one contiguous stream, and
// prefetch() runs 2 KiB ahead of it (measured 0.8-0.99 of the read bandwidth, against 0.66
// for row-major rows).
template <class E>
struct InterleavedLoader {
  const Weight* w;
  const E* base() const { return static_cast<const E*>(w->data); }
  int64_t padded_cols() const { return (w->cols + 7) / 8 * 8; }
  const E* address(int64_t n, int64_t k) const { return base() + (n / 8) * 8 * padded_cols() + k * 8 + (n % 8) * 8; }
  __m256 load(int64_t n, int64_t k) const { return f32x8(address(n, k)); }
  __m256 load_tail(int64_t n, int64_t k) const { return load(n, k); }  // zero-padded to 8 columns
  template <int NR>
  void prefetch(int64_t n, int64_t k) const {
    for (int64_t b = 0; b < 64 * static_cast<int64_t>(sizeof(E)); b += 64)
      _mm_prefetch(bytes_ahead(address(n, k), 2048 + b), _MM_HINT_T0);
  }
};

// interleaved bf16 rows: lane j of 16 columns from c holds (column c + 8 + j, column c + j) as a
// pair of halves (tensor/weight.h); chunk c is the high halves, chunk c + 8 the low ones shifted
// up. Only for converting rows to f32 (packed_rows); the products on these rows load each pair
// once for both chunks (bf16_pair_tile).
template <>
struct InterleavedLoader<uint16_t> {
  const Weight* w;
  const uint16_t* pairs(int64_t n, int64_t k) const {
    return w->bf16() + (n / 8) * 8 * w->padded_cols() + (k / 16) * 128 + (n % 8) * 16;
  }
  __m256 load(int64_t n, int64_t k) const {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pairs(n, k)));
    return k % 16 == 0 ? high_halves_of(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))) : low_halves_of(v);
  }
  __m256 load_tail(int64_t n, int64_t k) const { return load(n, k); }  // zero-padded to 16 columns
};

// Rows already converted to f32, each padded with zeros to a multiple of 8 (in cache).
struct PackedLoader {
  const float* base;
  int64_t ld;
  const void* address(int64_t n, int64_t k) const { return base + n * ld + k; }
  __m256 load(int64_t n, int64_t k) const { return _mm256_loadu_ps(base + n * ld + k); }
  __m256 load_tail(int64_t n, int64_t k) const { return load(n, k); }
  template <int NR>
  void prefetch(int64_t, int64_t) const {}
};

// Packed rows whose tiles also request the memory of the rows to be packed next (`next`, in
// order, `next_bytes` of them): the tile at row n, column k requests the byte at 2 * (n * ld + k)
// of each of its rows (bf16: half the packed f32 bytes), once a line.
struct PackedPrefetchLoader : PackedLoader {
  const char* next;
  int64_t next_bytes;
  template <int NR>
  void prefetch(int64_t n, int64_t k) const {
    if (k % 32 != 0) return;
    for (int r = 0; r < NR; ++r) {
      const int64_t at = 2 * ((n + r) * ld + k);
      if (at < next_bytes) _mm_prefetch(next + at, _MM_HINT_T0);
    }
  }
};

// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)): hadd twice gives the two inner sums in lane 0
// of each 128-bit half.
inline float lane_sum(__m256 v) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v, v), _mm256_hadd_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// lane_sum of four vectors at once, the same bits: [lane_sum(a), lane_sum(b), lane_sum(c),
// lane_sum(d)] from three hadds and an add, where four lane_sums take eight hadds (a short dot,
// such as attention's over a 64-dim head, spends a third of its time on them).
inline __m128 lane_sums4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// y[m * ldy + r] = lane_sum(acc[m][r]) for m < MR, r < NR, four at a time.
// (The accumulators are taken as they are: copied into a padded array first, GCC 12 stored them
// all to the stack and the hadds read them back, a fifth of a 64-column attention tile.)
template <int MR, int NR>
inline void store_lane_sums(const __m256 (&acc)[MR][NR], float* y, int64_t ldy) {
  constexpr int kCount = MR * NR, kPadded = (kCount + 3) / 4 * 4;
  auto at = [&](int i) { return i < kCount ? acc[i / NR][i % NR] : _mm256_setzero_ps(); };
  alignas(16) float sums[kPadded];
  for (int i = 0; i < kPadded; i += 4) _mm_store_ps(sums + i, lane_sums4(at(i), at(i + 1), at(i + 2), at(i + 3)));
  for (int i = 0; i < kCount; ++i) y[(i / NR) * ldy + i % NR] = sums[i];
}

// y[m * ldy + r] = dot(x row m, weight row n + r) for m < MR, r < NR. kTail: K may end in a
// partial chunk (false only where K % 8 == 0). Without a tail the accumulators stay in registers
// from the loop to the lane sums; with one, GCC 12 stores all of them to the stack and reloads
// them, half the time of a 64-column attention tile (perf, Zen 3).
template <int MR, int NR, bool kTail, class L>
inline void tile(const float* x, int64_t ldx, int64_t K, const L& ld, int64_t n, float* y, int64_t ldy) {
  const int64_t k_full = kTail ? K & ~int64_t{7} : K;
  // The partial chunk's weights are built before the loop: a call made while the accumulators are
  // live would make the compiler keep them in memory.
  // (Zeros set one by one: `= {}` became a rep stos, a tenth of a 64-column attention tile.)
  __m256 w_tail[NR];
  if constexpr (kTail)
    for (int r = 0; r < NR; ++r) w_tail[r] = k_full < K ? ld.load_tail(n + r, k_full) : _mm256_setzero_ps();
  __m256 acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < k_full; k += 8) {
    ld.template prefetch<NR>(n, k);
    if constexpr (MR == 1) {
      // One token: each row used as it is loaded. With all 8 rows loaded first (8 weights, 8
      // accumulators and the input: 17 registers) GCC kept an accumulator in memory, a store and
      // a reload on its chain every step (attention over a 64-dim bf16 head, one query).
      const __m256 xv = _mm256_loadu_ps(x + k);
      for (int r = 0; r < NR; ++r) acc[0][r] = _mm256_fmadd_ps(xv, ld.load(n + r, k), acc[0][r]);
    } else {
      __m256 wv[NR];
      for (int r = 0; r < NR; ++r) wv[r] = ld.load(n + r, k);
      for (int m = 0; m < MR; ++m) {
        const __m256 xv = _mm256_loadu_ps(x + m * ldx + k);
        for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_fmadd_ps(xv, wv[r], acc[m][r]);
      }
    }
  }
  if constexpr (kTail) {
    if (k_full < K) {
      const __m256i mask = first_lanes(K - k_full);
      for (int m = 0; m < MR; ++m) {
        const __m256 xv = _mm256_maskload_ps(x + m * ldx + k_full, mask);
        for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_fmadd_ps(xv, w_tail[r], acc[m][r]);
      }
    }
  }
  store_lane_sums(acc, y, ldy);
}

// Tile shapes in use: one token x {1..4, 8} rows, batches of up to 4 tokens x {1..3} rows.
template <int MR, bool kTail, class L>
void tile_nr(int nr, const float* x, int64_t ldx, int64_t K, const L& ld, int64_t n, float* y, int64_t ldy) {
  switch (nr) {
    case 1:
      return tile<MR, 1, kTail>(x, ldx, K, ld, n, y, ldy);
    case 2:
      return tile<MR, 2, kTail>(x, ldx, K, ld, n, y, ldy);
    case 3:
      return tile<MR, 3, kTail>(x, ldx, K, ld, n, y, ldy);
  }
  if constexpr (MR == 1) {
    if (nr == 4) return tile<1, 4, kTail>(x, ldx, K, ld, n, y, ldy);
    if (nr == 8) return tile<1, 8, kTail>(x, ldx, K, ld, n, y, ldy);
  }
  std::abort();
}

template <bool kTail, class L>
void tile_any(int mr, int nr, const float* x, int64_t ldx, int64_t K, const L& ld, int64_t n, float* y, int64_t ldy) {
  switch (mr) {
    case 1:
      return tile_nr<1, kTail>(nr, x, ldx, K, ld, n, y, ldy);
    case 2:
      return tile_nr<2, kTail>(nr, x, ldx, K, ld, n, y, ldy);
    case 3:
      return tile_nr<3, kTail>(nr, x, ldx, K, ld, n, y, ldy);
    default:
      return tile_nr<4, kTail>(nr, x, ldx, K, ld, n, y, ldy);
  }
}

// The whole MR x NR tiles of rows [0, count) in one loop with the tile inlined (flatten); returns
// the first row left. For attention's short rows: a call per 64-dim tile took a sixth of the dot
// (4 queries, warm), more when the core is shared. Weight rows keep their calls: inlined,
// GCC 12's f32 one-token tile streamed at 0.65 of the read instead of 0.82.
template <int MR, int NR, bool kTail, class L>
[[gnu::flatten]] int64_t whole_tiles(const float* x, int64_t ldx, int64_t K, const L& ld, int64_t ln0, int64_t count,
                                     float* y, int64_t ldy) {
  int64_t r = 0;
  for (; r + NR <= count; r += NR) tile<MR, NR, kTail>(x, ldx, K, ld, ln0 + r, y + r, ldy);
  return r;
}

template <bool kTail, bool kInlineTiles, class L>
void rows_with_tail(const float* x, int64_t M, int64_t ldx, int64_t K, const L& ld, int64_t ln0, int64_t count,
                    float* y, int64_t ldy) {
  // One token: 8 weight rows in flight (8 independent FMA chains, and enough memory streams:
  // measured 10.3 GB/s against 7 with 4 rows); batches: 4 x 3 register tiles.
  const int nr_max = M == 1 ? 8 : 3;
  for (int64_t m = 0; m < M; m += 4) {
    const int mr = static_cast<int>(std::min<int64_t>(4, M - m));
    const float* xm = x + m * ldx;
    float* ym = y + m * ldy;
    int64_t r = 0;
    if constexpr (kInlineTiles) {
      switch (mr) {
        case 1: r = whole_tiles<1, 8, kTail>(xm, ldx, K, ld, ln0, count, ym, ldy); break;
        case 2: r = whole_tiles<2, 3, kTail>(xm, ldx, K, ld, ln0, count, ym, ldy); break;
        case 3: r = whole_tiles<3, 3, kTail>(xm, ldx, K, ld, ln0, count, ym, ldy); break;
        default: r = whole_tiles<4, 3, kTail>(xm, ldx, K, ld, ln0, count, ym, ldy); break;
      }
    }
    while (r < count) {
      int nr = static_cast<int>(std::min<int64_t>(nr_max, count - r));
      if (nr > 4 && nr < 8) nr = 4;
      tile_any<kTail>(mr, nr, xm, ldx, K, ld, ln0 + r, ym + r, ldy);
      r += nr;
    }
  }
}

// Weight rows [n0, n1) relative to the loader's row numbering `ln0`; outputs at y column 0.
template <bool kInlineTiles = false, class L>
void rows_with(const float* x, int64_t M, int64_t ldx, int64_t K, const L& ld, int64_t ln0, int64_t count, float* y,
               int64_t ldy) {
  if (K % 8 == 0) return rows_with_tail<false, kInlineTiles>(x, M, ldx, K, ld, ln0, count, y, ldy);
  rows_with_tail<true, kInlineTiles>(x, M, ldx, K, ld, ln0, count, y, ldy);
}

template <class L>
void pack_rows(const L& ld, int64_t n0, int64_t n1, int64_t K, int64_t ld_packed, float* packed) {
  const int64_t k_full = K & ~int64_t{7};
  for (int64_t n = n0; n < n1; ++n) {
    float* row = packed + (n - n0) * ld_packed;
    for (int64_t k = 0; k < k_full; k += 8) _mm256_storeu_ps(row + k, ld.load(n, k));
    if (k_full < K) _mm256_storeu_ps(row + k_full, ld.load_tail(n, k_full));
  }
}

// Interleaved bf16 rows to f32, whole blocks of 8 rows at a time: the block's 256 bytes of each
// 16 columns are read in order (one memory stream, requested 2 KiB ahead) and give all 8 rows
// their two chunks. Row by row (the generic pack_rows above), the same bytes were read in
// strided passes of 32 bytes every 256, and the conversion waited on memory: a tenth of a
// moepp-1b pp512 profile, half of it on one load. Rows outside whole blocks go row by row.
void pack_rows(const InterleavedLoader<uint16_t>& ld, int64_t n0, int64_t n1, int64_t K, int64_t ld_packed,
               float* packed) {
  const int64_t b0 = std::min(n1, (n0 + 7) / 8 * 8), b1 = std::max(b0, n1 / 8 * 8);
  pack_rows<InterleavedLoader<uint16_t>>(ld, n0, b0, K, ld_packed, packed);
  const __m256i high_halves = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t steps = (K + 15) / 16;
  for (int64_t n = b0; n < b1; n += 8) {
    const uint16_t* block = ld.pairs(n, 0);  // [steps][8 rows][16 pairs]
    float* out = packed + (n - n0) * ld_packed;  // [8 rows][ld_packed]
    for (int64_t q = 0; q < steps; ++q) {
      for (int b = 0; b < 256; b += 64) _mm_prefetch(bytes_ahead(block + 128 * q, 2048 + b), _MM_HINT_T0);
      const bool low_chunk = 16 * q + 8 < ld_packed;  // past K rounded up to 8: not stored
      for (int r = 0; r < 8; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 128 * q + 16 * r));
        float* row = out + r * ld_packed + 16 * q;
        _mm256_storeu_ps(row, high_halves_of(v, high_halves));
        if (low_chunk) _mm256_storeu_ps(row + 8, low_halves_of(v));
      }
    }
  }
  pack_rows<InterleavedLoader<uint16_t>>(ld, b1, n1, K, ld_packed, packed + (b1 - n0) * ld_packed);
}

// Many tokens: several tiles of tokens share each weight row, so the rows are converted to f32
// once (exact) and the tiles read them from cache.
template <class L>
void packed_rows(const float* x, int64_t M, int64_t ldx, int64_t K, const L& ld, int64_t n0, int64_t n1, float* y,
                 int64_t ldy) {
  thread_local std::vector<float> packed;
  const int64_t ld_packed = (K + 7) & ~int64_t{7};
  packed.resize(static_cast<size_t>((n1 - n0) * ld_packed));
  pack_rows(ld, n0, n1, K, ld_packed, packed.data());
  rows_with(x, M, ldx, K, PackedLoader{packed.data(), ld_packed}, 0, n1 - n0, y, ldy);
}

// Many tokens against interleaved bf16 rows [n0, n1), 24 rows (3 blocks, 8 tiles of 3 rows) at a
// time: each group converted to f32 (pack_rows), then its tiles computed while they request the
// next group's bytes, so memory works during the arithmetic instead of before it. moepp-1b's
// 2048 x 768 matrices, cold, one thread, 128-row tasks: 16 tokens 54-57 -> 63-65 GFLOP/s, 24
// tokens 49-58 -> 65-70, 56 tokens 60-70 -> 77-80 against converting a task's rows first; groups
// of 48 rows measured no better (49-62 at 16 tokens).
void bf16_packed_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                      int64_t ldy) {
  constexpr int64_t kGroup = 24;
  const InterleavedLoader<uint16_t> ld{&w};
  const int64_t K = w.cols, ld_packed = (K + 7) & ~int64_t{7};
  thread_local std::vector<float> packed;
  packed.resize(static_cast<size_t>(kGroup * ld_packed));
  const auto block_start = [&](int64_t n) { return reinterpret_cast<const char*>(ld.pairs(n / 8 * 8, 0)); };
  for (int64_t g0 = n0; g0 < n1; g0 += kGroup) {
    const int64_t g1 = std::min(n1, g0 + kGroup), h1 = std::min(n1, g1 + kGroup);
    pack_rows(ld, g0, g1, K, ld_packed, packed.data());
    const PackedPrefetchLoader pl{{packed.data(), ld_packed}, block_start(g1),
                                  g1 < h1 ? block_start(h1 + 7) - block_start(g1) : 0};
    rows_with(x, M, ldx, K, pl, 0, g1 - g0, y + (g0 - n0), ldy);
  }
}

template <class L>
void rows_for(const float* x, int64_t M, int64_t ldx, const Weight& w, const L& ld, int64_t n0, int64_t n1, float* y,
              int64_t ldy) {
  const int64_t K = w.cols;
  const bool plain_f32 = w.dtype == DType::kF32 && (K % 8 == 0 || w.interleaved);
  if (M <= 4 || plain_f32) return rows_with(x, M, ldx, K, ld, n0, n1 - n0, y, ldy);
  packed_rows(x, M, ldx, K, ld, n0, n1, y, ldy);
}

// Up to 4 tokens against interleaved bf16 rows: each row's 32 bytes of 16 columns
// ([K/16][8 rows][16 pairs], tensor/weight.h) are loaded once and give both of their chunks (high
// halves masked, low halves shifted up), where tile() loads them once a chunk. On this project's
// Zen 3 machine (AVX2 only) twice the loads held fewer lines in flight: a one-token
// microbenchmark of the two (one thread, pinned, alternated) read 12.7-13.2 GB/s against
// 18.4-20.0, and `bench --stream --weights bf16` went from 0.60 to 0.76 of the read.
// Chunks past K are left out, as the contract's zero padding to 8 columns does; a partial chunk
// adds 0 x 0 past K (x under a mask, weights zero-padded), as tile()'s does.

// The first `live` (1..8) of 8 floats at p, zeros past them.
inline __m256 load_x8(const float* p, int64_t live) {
  return live >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes(live));
}

// v as it is, in a register: GCC otherwise folds a load used by several FMAs into each of them,
// one load per FMA instead of one per input chunk, which left the bf16 batch tiles load-bound
// (moepp-1b's 2048 x 768 bf16 matrices, cold, one thread: 4 tokens 26-33 -> 33-38 GFLOP/s, 6
// tokens 26-34 -> 38-41; from L1, 4 tokens x 2 rows 42-52 -> 68-83, against 81-98 for f32 rows).
inline __m256 in_register(__m256 v) {
  asm("" : "+x"(v));
  return v;
}

// Steps [q0, q1) of 16 columns (q1 <= ceil(K / 16); a step past K / 16 is the partial one) of
// MR tokens x NR rows into acc: lane j of acc[m][r] adds x column 16q + j times the high halves,
// then column 16q + 8 + j times the low ones. prefetch(q) runs before each whole step. Each input
// chunk is loaded once for all NR rows; a batch converts its rows' high halves for all tokens,
// then the low ones (one token: both of each row in turn, its 8 rows' halves would not fit).
template <int MR, int NR, class Prefetch>
inline void bf16_pair_steps(const float* x, int64_t ldx, int64_t K, const uint16_t* const* rows, int64_t q0,
                            int64_t q1, __m256 (&acc)[MR][NR], Prefetch&& prefetch) {
  const __m256i high_halves = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  auto step = [&](int64_t q, int64_t live) {  // live: columns of this step below K (1..16)
    if constexpr (MR == 1) {
      const __m256 x_high = in_register(load_x8(x + 16 * q, live));
      const __m256 x_low = live > 8 ? in_register(load_x8(x + 16 * q + 8, live - 8)) : _mm256_setzero_ps();
      for (int r = 0; r < NR; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + 128 * q));
        acc[0][r] = _mm256_fmadd_ps(x_high, high_halves_of(v, high_halves), acc[0][r]);
        if (live > 8) acc[0][r] = _mm256_fmadd_ps(x_low, low_halves_of(v), acc[0][r]);
      }
    } else {
      __m256i v[NR];
      for (int r = 0; r < NR; ++r) v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + 128 * q));
      for (int half = 0; half < (live > 8 ? 2 : 1); ++half) {
        __m256 wv[NR];
        for (int r = 0; r < NR; ++r) wv[r] = half == 0 ? high_halves_of(v[r], high_halves) : low_halves_of(v[r]);
        for (int m = 0; m < MR; ++m) {
          const __m256 xv = in_register(load_x8(x + m * ldx + 16 * q + 8 * half, live - 8 * half));
          for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_fmadd_ps(xv, wv[r], acc[m][r]);
        }
      }
    }
  };
  const int64_t q_full = std::min(q1, K / 16);
  for (int64_t q = q0; q < q_full; ++q) {
    prefetch(q);
    step(q, 16);
  }
  if (q1 > q_full && K > 16 * q_full) step(q_full, K - 16 * q_full);
}

// y[m * ldy + r] = dot(x row m, the row whose pairs start at rows[r]) for m < MR, r < NR; rows
// advance 128 elements (8 rows x 16 pairs) a step of 16 columns.
template <int MR, int NR>
void bf16_pair_tile(const float* x, int64_t ldx, int64_t K, const uint16_t* const* rows, float* y, int64_t ldy) {
  __m256 acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_setzero_ps();
  // 1 KiB ahead, a line for each two rows (a tile's rows share lines): 0.78-0.82 of the
  // two-stream read against 0.76-0.80 at 2 KiB in the microbenchmark above
  bf16_pair_steps<MR, NR>(x, ldx, K, rows, 0, (K + 15) / 16, acc, [&](int64_t q) {
    for (int r = 0; r < NR; r += 2) _mm_prefetch(bytes_ahead(rows[r] + 128 * q, 1024), _MM_HINT_T0);
  });
  store_lane_sums(acc, y, ldy);
}

template <int MR>
void bf16_pair_rows_of(const float* x, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const InterleavedLoader<uint16_t> ld{&w};
  const int64_t K = w.cols;
  for (int64_t n = n0; n < n1;) {
    const uint16_t* rows[8];
    // One token: whole blocks of 8 (8 accumulators); batches: 2 rows (8 accumulators for 4 tokens).
    const int nr = MR == 1 && n % 8 == 0 && n + 8 <= n1 ? 8 : MR > 1 && n + 2 <= n1 ? 2 : 1;
    for (int r = 0; r < nr; ++r) rows[r] = ld.pairs(n + r, 0);
    float* out = y + (n - n0);
    if constexpr (MR == 1) {
      if (nr == 8) bf16_pair_tile<1, 8>(x, ldx, K, rows, out, ldy);
      else bf16_pair_tile<1, 1>(x, ldx, K, rows, out, ldy);
    } else {
      if (nr == 2) bf16_pair_tile<MR, 2>(x, ldx, K, rows, out, ldy);
      else bf16_pair_tile<MR, 1>(x, ldx, K, rows, out, ldy);
    }
    n += nr;
  }
}

// Up to 4 tokens against interleaved bf16 rows [n0, n1).
void bf16_pair_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                    int64_t ldy) {
  switch (M) {
    case 1: return bf16_pair_rows_of<1>(x, ldx, w, n0, n1, y, ldy);
    case 2: return bf16_pair_rows_of<2>(x, ldx, w, n0, n1, y, ldy);
    case 3: return bf16_pair_rows_of<3>(x, ldx, w, n0, n1, y, ldy);
    default: return bf16_pair_rows_of<4>(x, ldx, w, n0, n1, y, ldy);
  }
}

// Several tokens against whole blocks of 8 interleaved bf16 rows. A block's columns are taken in
// chunks of 256 (4 KiB of weights): each chunk is requested during the previous one, shared out
// between the groups of 4 tokens, and read from L1 by all of them. The lanes wait in `lanes`
// between chunks. bf16_pair_tile alone streams each block once per 4 tokens and pair of rows (a
// line in four each time), and the f32 conversion of whole rows (packed_rows) costs as much again
// as the products of a few tokens: on moepp-1b's 2048 x 768 matrices, cold, one thread, 2, 4, 8
// and 12 tokens ran at 21, 36, 34-40 and 39-40 GFLOP/s against 17-18, 23-25, 25 and 32-33.
// - Every group requests its share of the next chunk, 4 KiB ahead, so memory works through the
//   whole chunk's arithmetic. The first group alone requesting all of it (until session 22) left
//   memory idle during the other groups' and the first one waiting: cold, one thread, the two
//   alternated rep by rep, 6 tokens 48-50 -> 54-56 GFLOP/s, 8 tokens 53-56 -> 60-61, 12 tokens
//   57-60 -> 59-63.
// - A group of 1 or 2 tokens takes 8 or 4 rows a tile, where pairs of rows left it 2 or 4
//   accumulators, each a chain of dependent FMAs (alternated as above: 2 tokens 20-22 -> 24-27,
//   6 tokens 52-55 -> 56-59, 9 tokens 44-55 -> 52-60, 13 tokens 53-57 -> 57-61; groups of 3 as
//   3 x 4 tiles spilled registers, 7 tokens 40-57 -> 43-47).
// Same bits as bf16_pair_tile: every lane adds the same products in the same order.
void bf16_pair_blocks(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n, float* y, int64_t ldy) {
  constexpr int64_t kChunkSteps = 16;  // steps of 16 columns
  const InterleavedLoader<uint16_t> ld{&w};
  const int64_t K = w.cols, steps = (K + 15) / 16;
  thread_local std::vector<float> lanes;  // [M, 8 rows, 8 lanes] accumulators
  // Not cleared (a memset every block cost 0-6% at 4-12 tokens, cold or from L2; 2 tokens within
  // the noise): the first chunk starts its accumulators from zero.
  lanes.resize(static_cast<size_t>(M * 64));
  if (steps == 0) std::fill(lanes.begin(), lanes.end(), 0.0f);
  const uint16_t* rows[8];
  for (int r = 0; r < 8; ++r) rows[r] = ld.pairs(n + r, 0);
  const int64_t groups = (M + 3) / 4;  // of 4 tokens (the last maybe fewer)
  for (int64_t q0 = 0; q0 < steps; q0 += kChunkSteps) {
    const int64_t q1 = std::min(steps, q0 + kChunkSteps);
    for_query_blocks_of_4(M, [&](auto tokens, int64_t m0) {
      constexpr int MR = decltype(tokens)::value;
      auto pass = [&](auto rows_per_pass, int r0) {
        constexpr int NR = decltype(rows_per_pass)::value;
        __m256 acc[MR][NR];
        for (int m = 0; m < MR; ++m)
          for (int r = 0; r < NR; ++r)
            acc[m][r] = q0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(&lanes[((m0 + m) * 8 + r0 + r) * 8]);
        const float* xm = x + m0 * ldx;
        // These rows' lines of every step of the next chunk, shared out between the token
        // groups: group g requests steps g, g + groups, ...
        int64_t next_request = q0 + m0 / 4;
        bf16_pair_steps<MR, NR>(xm, ldx, K, rows + r0, q0, q1, acc, [&](int64_t q) {
          if (q != next_request) return;
          for (int r = (r0 + 1) / 2 * 2; r < r0 + NR; r += 2)  // a line a pair, once
            _mm_prefetch(bytes_ahead(rows[r] + 128 * q, 4096), _MM_HINT_T0);
          next_request += groups;
        });
        for (int m = 0; m < MR; ++m)
          for (int r = 0; r < NR; ++r) _mm256_storeu_ps(&lanes[((m0 + m) * 8 + r0 + r) * 8], acc[m][r]);
      };
      using std::integral_constant;
      // 8 accumulators a tile where the shape allows (9 and 6 for 3 tokens alone), as each adds
      // two dependent products a step. 3 tokens alone take rows 3, 3 and 2 at a time: 33-36 ->
      // 36-39 GFLOP/s (cold, one thread, alternated); a last group of 3 after others (7, 11, 15
      // tokens) was 3-5% slower that way and keeps 3 x 2 tiles.
      if constexpr (MR == 3) {
        if (groups == 1) {
          pass(integral_constant<int, 3>{}, 0);
          pass(integral_constant<int, 3>{}, 3);
          pass(integral_constant<int, 2>{}, 6);
          return;
        }
      }
      constexpr int NR = MR == 1 ? 8 : MR == 2 ? 4 : 2;
      for (int r0 = 0; r0 < 8; r0 += NR) pass(integral_constant<int, NR>{}, r0);
    });
  }
  for (int64_t m = 0; m < M; ++m)
    for (int r = 0; r < 8; ++r) y[m * ldy + r] = lane_sum(_mm256_loadu_ps(&lanes[(m * 8 + r) * 8]));
}

// Many tokens against interleaved bf16 rows [n0, n1): whole blocks as bf16_pair_blocks, rows
// outside them four tokens at a time.
void bf16_pair_batch(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                     int64_t ldy) {
  for (int64_t n = n0; n < n1;) {
    const int64_t block_end = std::min(n1, (n / 8 + 1) * 8);
    if (block_end - n == 8) {
      bf16_pair_blocks(x, M, ldx, w, n, y + (n - n0), ldy);
    } else {
      for (int64_t m = 0; m < M; m += 4)
        bf16_pair_rows(x + m * ldx, std::min<int64_t>(4, M - m), ldx, w, n, block_end, y + m * ldy + (n - n0), ldy);
    }
    n = block_end;
  }
}

// The integer path for q8/q4 weights, without AVX-VNNI.
namespace plain_integer {
constexpr bool kVnni = false;
#include "ops/dot_kernels_avx2_int.inc"
}  // namespace plain_integer

void avx2_quantized_rows(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1,
                         float* y, int64_t ldy) {
  plain_integer::quantized_rows(a, m0, M, w, n0, n1, y, ldy);
}

void avx2_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  if (w.quant != WeightQuant::kNone) return rows_on_quantized_inputs(avx2_quantized_rows, x, M, ldx, w, n0, n1, y, ldy);
  const bool f32 = w.dtype == DType::kF32;
  if (w.interleaved) {
    if (f32) return rows_for(x, M, ldx, w, InterleavedLoader<float>{&w}, n0, n1, y, ldy);
    // A few tokens: the blocks in chunks (bf16_pair_batch); more: the rows converted to f32 once,
    // 24 at a time (bf16_packed_rows), whose 4 x 3 tiles read 7 rows of K floats a pass. Where
    // those fit 24 KiB of L1's 32 (K <= 877) the converted rows win from 14 tokens, elsewhere
    // from 24 (until session 22 from 16 for every K). Cold, one thread, 128-row tasks, the two
    // alternated rep by rep (GFLOP/s, in chunks against converted): moepp-1b's 2048 x 768, 12-13
    // tokens the same, 14 48-57 against 58-60, 15 58 against 64-65; its 768 x 2048, 16-22 tokens
    // 57-62 against 52-57, 24 58-61 against 57-60, 28 the same; mixtral-1.8b's 2816 x 1024, 12-24
    // tokens 55-60 against 45-58; its 1024 x 2816, 12-20 tokens about the same, 24-32 57-60
    // against 62-65.
    const bool tile_rows_fit_l1 = 7 * w.cols * static_cast<int64_t>(sizeof(float)) <= 24 * 1024;
    const int64_t converted_from = tile_rows_fit_l1 ? 14 : 24;
    if (M == 1) return bf16_pair_rows(x, M, ldx, w, n0, n1, y, ldy);
    if (M < converted_from) return bf16_pair_batch(x, M, ldx, w, n0, n1, y, ldy);
    return bf16_packed_rows(x, M, ldx, w, n0, n1, y, ldy);
  }
  if (f32) return rows_for(x, M, ldx, w, RowMajorLoader<float>{{&w}}, n0, n1, y, ldy);
  rows_for(x, M, ldx, w, RowMajorLoader<uint16_t>{{&w}}, n0, n1, y, ldy);
}

// The first `live` of 8 elements of a cache row (f32 or bf16) as f32, zeros past them.
inline __m256 load_tail8(const float* p, __m256i mask, int64_t) { return _mm256_maskload_ps(p, mask); }
inline __m256 load_tail8(const uint16_t* p, __m256i, int64_t live) {
  alignas(32) float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < live; ++i) v[i] = row_value(p, i);
  return _mm256_load_ps(v);
}

template <class T>
float avx2_dot_of(const float* a, const T* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  const int64_t n_full = n & ~int64_t{7};
  for (int64_t k = 0; k < n_full; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), f32x8(b + k), acc);
  if (n_full < n) {
    const __m256i mask = first_lanes(n - n_full);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + n_full, mask), load_tail8(b + n_full, mask, n - n_full), acc);
  }
  return lane_sum(acc);
}

template <class T>
void avx2_axpy_of(float a, const T* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(av, f32x8(x + i))));
  for (; i < n; ++i) y[i] = y[i] + a * row_value(x, i);
}

float avx2_dot(const float* a, const float* b, int64_t n) { return avx2_dot_of(a, b, n); }
void avx2_axpy(float a, const float* x, float* y, int64_t n) { avx2_axpy_of(a, x, y, n); }

void avx2_dot_rows(const float* a, const float* rows, int64_t stride, int64_t count, int64_t n, float* y) {
  for (int64_t j = 0; j < count; ++j) y[j] = avx2_dot(a, rows + j * stride, n);
}

void avx2_axpy_rows(const float* c, const float* rows, int64_t stride, int64_t count, float* y, int64_t n) {
  for (int64_t j = 0; j < count; ++j) avx2_axpy(c[j], rows + j * stride, y, n);
}

// Attention over a sequence's cache rows (f32 or bf16, `stride` elements apart), several queries
// at once. One query at a time, every key was one chain of dependent FMAs and every value row a
// load and store of y per query: bench --attention read 2048-key heads at 0.18 (bf16) and 0.31
// (f32) of a plain read.
template <class T>
struct CacheRowsLoader {
  static constexpr int64_t kColumnsPerLine = 64 / sizeof(T);
  const T* rows;
  int64_t stride, cols;
  const T* address(int64_t n, int64_t k) const { return rows + n * stride + k; }
  // For requests only: row n may be past the last (prefetch.h).
  const char* request_address(int64_t n, int64_t k) const {
    return bytes_ahead(rows, static_cast<int64_t>(sizeof(T)) * (n * stride + k));
  }
  __m256 load(int64_t n, int64_t k) const { return f32x8(address(n, k)); }
  float value(int64_t n, int64_t k) const { return row_value(address(n, k), 0); }
  __m256 load_tail(int64_t n, int64_t k) const {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; k + j < cols && j < 8; ++j) t[j] = value(n, k + j);
    return _mm256_load_ps(t);
  }
  CacheRowsLoader from(int64_t n) const { return {address(n, 0), stride, cols}; }
  // The rows two tiles on, a line as each line of a row starts: the rows are read across, chunk
  // by chunk, which the hardware prefetcher does not follow.
  template <int NR>
  void prefetch(int64_t n, int64_t k) const {
    if (k % kColumnsPerLine == 0)
      for (int r = 0; r < NR; ++r) _mm_prefetch(request_address(n + 2 * NR + r, k), _MM_HINT_T0);
  }
};

// q8 KV cache rows (ops/kv_quant.h, rows `cols` apart) as CacheRowsLoader gives f32 and bf16
// ones: 8 values widened in registers, each float(q) * its group's scale as dequantize_kv_rows
// computes it, so the kernels on it give the f32 kernels' bits on the widened rows. kCols > 0: the
// row width as a constant (the common head sizes), so that every row's values and scales are a
// constant offset from one base. With the width a variable, a tile of 8 keys kept 16 row and scale
// addresses, more than the registers, and spent most of its time on them: 2048 64-dim keys and
// values, one query, warm, Zen 3: dot 16.4 -> 10.0 us, axpy 19.4 -> 8.4 us.
template <int64_t kCols = 0>
struct Q8CacheRowsLoader {
  static constexpr int64_t kColumnsPerLine = 64;
  const int8_t* rows;
  const float* scales;  // kv_scale_groups(cols) a row
  int64_t cols_given;   // used where kCols is 0
  int64_t cols() const { return kCols > 0 ? kCols : cols_given; }
  int64_t groups() const { return (cols() + kQuantGroup - 1) / kQuantGroup; }
  const int8_t* address(int64_t n, int64_t k) const { return rows + n * cols() + k; }
  // For requests only: row n may be past the last (prefetch.h).
  const char* request_address(int64_t n, int64_t k) const { return bytes_ahead(rows, n * cols() + k); }
  float scale(int64_t n, int64_t k) const { return scales[n * groups() + k / kQuantGroup]; }
  __m256 load(int64_t n, int64_t k) const {  // k % 8 == 0: the 8 values share a group
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(address(n, k))));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(scale(n, k)));
  }
  float value(int64_t n, int64_t k) const { return static_cast<float>(*address(n, k)) * scale(n, k); }
  __m256 load_tail(int64_t n, int64_t k) const {
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; k + j < cols() && j < 8; ++j) t[j] = value(n, k + j);
    return _mm256_load_ps(t);
  }
  Q8CacheRowsLoader from(int64_t n) const { return {address(n, 0), scales + n * groups(), cols_given}; }
  template <int NR>
  void prefetch(int64_t n, int64_t k) const {
    if (k % kColumnsPerLine == 0)
      for (int r = 0; r < NR; ++r) _mm_prefetch(request_address(n + 2 * NR + r, k), _MM_HINT_T0);
  }
};

// fn(loader) with the q8 loader for width n: a constant width for 64 and 128.
template <class Fn>
void with_q8_rows(const int8_t* rows, const float* scales, int64_t n, Fn fn) {
  if (n == 64) return fn(Q8CacheRowsLoader<64>{rows, scales, n});
  if (n == 128) return fn(Q8CacheRowsLoader<128>{rows, scales, n});
  fn(Q8CacheRowsLoader<>{rows, scales, n});
}

// Tile row r < 4 is row r of run a, row r >= 4 row r - 4 of run b (each a loader from its run's
// first key): one tile<1, 8> reads two places of the cache at once, every address a constant
// offset from its run's base. Prefetches each run's keys two tiles on.
template <class L>
struct TwoRunsLoader {
  static constexpr int64_t kColumnsPerLine = L::kColumnsPerLine;
  L a, b;
  __m256 load(int64_t r, int64_t k) const { return r < 4 ? a.load(r, k) : b.load(r - 4, k); }
  __m256 load_tail(int64_t r, int64_t k) const { return r < 4 ? a.load_tail(r, k) : b.load_tail(r - 4, k); }
  template <int NR>
  void prefetch(int64_t, int64_t k) const {
    if (k % kColumnsPerLine == 0)
      for (int r = 0; r < 4; ++r) {
        _mm_prefetch(a.request_address(8 + r, k), _MM_HINT_T0);
        _mm_prefetch(b.request_address(8 + r, k), _MM_HINT_T0);
      }
  }
};

// Queries in tiles of up to 4 against 3 keys: the weight-row tiles above, on cache rows. Each
// output is the contract's dot of one query and one key, so the order of the keys changes no bits.
// One query (a kv head of its own, as in MoE++ and LLaMA-MoE): tiles of 4 keys from each half of
// the keys, two memory streams. A cold 2048-key 64-dim bf16 head read at 0.90-0.94 of a plain
// read that way, against 0.64-0.70 in one run of 8 keys a tile and 0.73-0.75 with whole 8-key
// tiles taking turns between the halves (Zen 3, one thread, alternated call by call).
template <class L>
void dot_rows_with(const float* q, int64_t A, int64_t ldq, int64_t n, const L& ld, int64_t count, float* y,
                   int64_t ldy) {
  const int64_t half = count / 8 * 4;  // keys per stream
  if (A != 1 || half < 8) return rows_with<true>(q, A, ldq, n, ld, 0, count, y, ldy);
  for (int64_t j = 0; j < half; j += 4) {
    // The prefetches reach 8-11 keys past a run's first: inside the caller's rows for the first
    // run, up to 8 keys past the last key for the second (hints: they never fault).
    alignas(16) float out[8];
    const TwoRunsLoader<L> two{ld.from(j), ld.from(half + j)};
    if (n % 8 == 0) tile<1, 8, false>(q, ldq, n, two, 0, out, 1);
    else tile<1, 8, true>(q, ldq, n, two, 0, out, 1);
    std::memcpy(y + j, out, 4 * sizeof(float));
    std::memcpy(y + half + j, out + 4, 4 * sizeof(float));
  }
  rows_with(q, 1, ldq, n, ld, 2 * half, count - 2 * half, y + 2 * half, ldy);
}

template <class T>
void avx2_dot_rows_block_of(const float* q, int64_t A, int64_t ldq, const T* rows, int64_t stride, int64_t count,
                            int64_t n, float* y, int64_t ldy) {
  dot_rows_with(q, A, ldq, n, CacheRowsLoader<T>{rows, stride, n}, count, y, ldy);
}

// A queries' outputs over 8 * P columns from i, held in registers across all rows: y + c * row,
// a multiply then an add (two roundings, as AxpyKernel), rows in order. kPrefetchRows: each row's
// lines of these columns requested 2 KiB of them ahead (1 KiB and 4 KiB read slower). kFma: one
// FMA instead, for bf16 rows and bf16-valued probabilities, whose products are exact in f32 (8 by
// 8 significant bits), so that rounding the sum once is rounding it twice (subnormal products
// excepted, as the vdpbf16ps note in dot_kernels.h says).
template <int A, int P, bool kPrefetchRows = false, bool kFma = false, class L>
[[gnu::always_inline]] inline void axpy_columns(const float* c, int64_t ldc, const L& ld, int64_t count, float* y,
                                                int64_t ldy, int64_t i) {
  if (count == 0) return;
  // 2 KiB of the rows' 8 * P columns: 64 / kColumnsPerLine bytes a column.
  constexpr int64_t kAhead = 4 * L::kColumnsPerLine / P;
  __m256 acc[A][P];
  auto step = [&](int64_t j, auto first) {
    if constexpr (kPrefetchRows)
      for (int64_t k = 0; k < 8 * P; k += L::kColumnsPerLine)
        _mm_prefetch(ld.request_address(j + kAhead, i + k), _MM_HINT_T0);
    __m256 v[P];
    for (int b = 0; b < P; ++b) v[b] = ld.load(j, i + 8 * b);
    for (int a = 0; a < A; ++a) {
      const __m256 cj = _mm256_broadcast_ss(c + a * ldc + j);
      for (int b = 0; b < P; ++b) {
        // Row 0 adds to y as loaded: accumulators that start as plain loads GCC 12 kept in
        // memory, stored every step.
        const __m256 base = decltype(first)::value ? _mm256_loadu_ps(y + a * ldy + i + 8 * b) : acc[a][b];
        acc[a][b] = kFma ? _mm256_fmadd_ps(cj, v[b], base) : _mm256_add_ps(base, _mm256_mul_ps(cj, v[b]));
      }
    }
  };
  step(0, std::true_type{});
  for (int64_t j = 1; j < count; ++j) step(j, std::false_type{});
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < P; ++b) _mm256_storeu_ps(y + a * ldy + i + 8 * b, acc[a][b]);
}

// Up to 4 queries, rows in blocks of 32, columns from i0: over a block, 16 columns a pass (8
// accumulators), then 8, then the last columns one by one, each element still adding the rows in
// order. The block's rows stay in L1 between passes, so memory streams each row once (pass by
// pass over all rows, each pass read every row's line again, strided: see bench --attention).
template <int A, bool kFma, class L>
void axpy_row_blocks(const float* c, int64_t ldc, const L& rows, int64_t count, float* y, int64_t ldy, int64_t n,
                     int64_t i0) {
  constexpr int64_t kBlock = 32;
  for (int64_t j0 = 0; j0 < count; j0 += kBlock) {
    const int64_t rows_here = std::min(kBlock, count - j0);
    const L block = rows.from(j0);
    const float* cb = c + j0;
    // The next block requested, a share of its rows before each 16-column pass: the passes read
    // each row a piece at a time, which the hardware prefetcher does not follow.
    const int64_t next_rows = std::min(kBlock, count - j0 - rows_here);
    const int64_t row_bytes = n * static_cast<int64_t>(sizeof(*block.address(0, 0)));
    const int64_t passes = std::max<int64_t>(1, (n - i0) / 16);
    int64_t requested = 0, pass = 0;
    auto request = [&](int64_t upto) {
      for (; requested < upto; ++requested)
        for (int64_t b = 0; b < row_bytes; b += 64)
          _mm_prefetch(bytes_ahead(block.request_address(rows_here + requested, 0), b), _MM_HINT_T0);
    };
    int64_t i = i0;
    for (; i + 16 <= n; i += 16) {
      request(next_rows * ++pass / passes);
      axpy_columns<A, 2, false, kFma>(cb, ldc, block, rows_here, y, ldy, i);
    }
    request(next_rows);
    for (; i + 8 <= n; i += 8) axpy_columns<A, 1, false, kFma>(cb, ldc, block, rows_here, y, ldy, i);
    for (; i < n; ++i)
      for (int a = 0; a < A; ++a)
        for (int64_t j = 0; j < rows_here; ++j) y[a * ldy + i] = y[a * ldy + i] + cb[a * ldc + j] * block.value(j, i);
  }
}

// One query takes 128 columns a pass over all rows first, then 64 (16 or 8 accumulators:
// independent add chains, where 16 columns had two), reading the rows in order with their lines
// requested 2 KiB ahead. Cold 2048-row bf16 heads (Zen 3, one thread, alternated): 64 dims
// 0.57-0.60 of a plain read in blocks of 32 rows -> 0.75-0.80 (0.62-0.67 without the requests);
// 128 dims 0.49-0.57 in passes of 64 columns (each row read twice, strided) -> 0.73-0.76.
template <int A, bool kFma, class L>
void axpy_rows_block4(const float* c, int64_t ldc, const L& rows, int64_t count, float* y, int64_t ldy, int64_t n) {
  int64_t i0 = 0;
  if constexpr (A == 1) {
    for (; i0 + 128 <= n; i0 += 128) axpy_columns<1, 16, true, kFma>(c, ldc, rows, count, y, ldy, i0);
    for (; i0 + 64 <= n; i0 += 64) axpy_columns<1, 8, true, kFma>(c, ldc, rows, count, y, ldy, i0);
  }
  if (i0 < n) axpy_row_blocks<A, kFma>(c, ldc, rows, count, y, ldy, n, i0);
}

// Whether the first `count` of each of A rows of c (ldc apart) are bf16 values (low 16 bits zero).
// An f32 forward's probabilities fail on their first 8.
bool bf16_valued(const float* c, int64_t A, int64_t ldc, int64_t count) {
  const __m256i low_half = _mm256_set1_epi32(0xffff);
  for (int64_t a = 0; a < A; ++a) {
    const float* row = c + a * ldc;
    int64_t j = 0;
    __m256i low_bits = _mm256_setzero_si256();
    for (; j + 8 <= count; j += 8) {
      low_bits = _mm256_or_si256(low_bits, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j)));
      if (j == 0 && !_mm256_testz_si256(low_bits, low_half)) return false;
    }
    if (!_mm256_testz_si256(low_bits, low_half)) return false;
    for (; j < count; ++j)
      if ((std::bit_cast<uint32_t>(row[j]) & 0xffffu) != 0) return false;
  }
  return true;
}

template <class L>
void avx2_axpy_rows_block_with(const float* c, int64_t A, int64_t ldc, const L& rows, int64_t count, float* y,
                               int64_t ldy, int64_t n) {
  // bf16 rows (a bf16 forward's cache) times its bf16-valued probabilities, blocks of 2-4 queries:
  // FMAs, the same bits. Four queries a kv head of 2048 64-dim positions (mixtral-1.8b; the kernel
  // alone, MOEPP_KERNELS=avx2 on Zen 4, five alternations in a noisy spell): 15.7-24.1 -> 12.9-15.5
  // us warm, 19.1-30.2 -> 17.2-22.2 cold. One query keeps the multiply and add: its accumulators'
  // chains bound it, and an FMA's latency is longer than an add's (warm 7.4 -> 8.2-8.3 us).
  bool fma = false;
  if constexpr (std::is_same_v<L, CacheRowsLoader<uint16_t>>) fma = A > 1 && bf16_valued(c, A, ldc, count);
  for_query_blocks_of_4(A, [&](auto queries, int64_t a0) {
    constexpr int kA = decltype(queries)::value;
    if (kA > 1 && fma) axpy_rows_block4<kA, true>(c + a0 * ldc, ldc, rows, count, y + a0 * ldy, ldy, n);
    else axpy_rows_block4<kA, false>(c + a0 * ldc, ldc, rows, count, y + a0 * ldy, ldy, n);
  });
}

template <class T>
void avx2_axpy_rows_block_of(const float* c, int64_t A, int64_t ldc, const T* rows, int64_t stride, int64_t count,
                             float* y, int64_t ldy, int64_t n) {
  avx2_axpy_rows_block_with(c, A, ldc, CacheRowsLoader<T>{rows, stride, n}, count, y, ldy, n);
}

// q8 KV cache rows read directly (Q8CacheRowsLoader): every width.
bool avx2_dot_rows_block_q8(const float* q, int64_t A, int64_t ldq, const int8_t* rows, const float* scales,
                            int64_t count, int64_t n, float* y, int64_t ldy) {
  with_q8_rows(rows, scales, n, [&](const auto& ld) { dot_rows_with(q, A, ldq, n, ld, count, y, ldy); });
  return true;
}
bool avx2_axpy_rows_block_q8(const float* c, int64_t A, int64_t ldc, const int8_t* rows, const float* scales,
                             int64_t count, float* y, int64_t ldy, int64_t n) {
  with_q8_rows(rows, scales, n, [&](const auto& ld) { avx2_axpy_rows_block_with(c, A, ldc, ld, count, y, ldy, n); });
  return true;
}

void avx2_dot_rows_block(const float* q, int64_t A, int64_t ldq, const float* rows, int64_t stride, int64_t count,
                         int64_t n, float* y, int64_t ldy) {
  avx2_dot_rows_block_of(q, A, ldq, rows, stride, count, n, y, ldy);
}
void avx2_dot_rows_block_bf16(const float* q, int64_t A, int64_t ldq, const uint16_t* rows, int64_t stride,
                              int64_t count, int64_t n, float* y, int64_t ldy) {
  avx2_dot_rows_block_of(q, A, ldq, rows, stride, count, n, y, ldy);
}
void avx2_axpy_rows_block(const float* c, int64_t A, int64_t ldc, const float* rows, int64_t stride, int64_t count,
                          float* y, int64_t ldy, int64_t n) {
  avx2_axpy_rows_block_of(c, A, ldc, rows, stride, count, y, ldy, n);
}
void avx2_axpy_rows_block_bf16(const float* c, int64_t A, int64_t ldc, const uint16_t* rows, int64_t stride,
                               int64_t count, float* y, int64_t ldy, int64_t n) {
  avx2_axpy_rows_block_of(c, A, ldc, rows, stride, count, y, ldy, n);
}

// exp_f32 on 8 lanes: the scalar reference's operations in the same order.
inline __m256 exp8(__m256 x) {
  namespace c = exp_f32_constants;
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(c::kMin)), _mm256_set1_ps(c::kMax));
  const __m256 round = _mm256_set1_ps(c::kRound);
  const __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(c::kLog2e)), round), round);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-c::kLn2Hi), xc);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-c::kLn2Lo), r);
  __m256 poly = _mm256_set1_ps(c::kP[0]);
  for (int i = 1; i < 6; ++i) poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(c::kP[i]));
  const __m256 e_r = _mm256_add_ps(_mm256_fmadd_ps(poly, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvttps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  const __m256 result = _mm256_mul_ps(_mm256_mul_ps(e_r, s1), s2);
  return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN stays itself
}

// Whole chunks of 8 take plain loads and stores, the last partial one masked ones: Zen 3 runs a
// masked store (vmaskmovps) far slower than a store (exp_sum of 2048 scores, from L1: 2.8 -> 1.5 us).
double avx2_exp_sum(const float* x, float shift, float* y, int64_t n) {
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();  // lanes 0-3 and 4-7
  const __m256 sv = _mm256_set1_ps(shift);
  auto add = [&](__m256 kept) {
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(kept)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(kept, 1)));
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sv));
    _mm256_storeu_ps(y + i, e);
    add(e);
  }
  if (i < n) {
    const __m256i live = first_lanes(n - i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, live), sv));
    _mm256_maskstore_ps(y + i, live, e);
    add(_mm256_and_ps(e, _mm256_castsi256_ps(live)));  // lanes past n add +0: no change
  }
  alignas(32) double l[8];
  _mm256_store_pd(l, lo);
  _mm256_store_pd(l + 4, hi);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

void avx2_silu(const float* x, float* y, int64_t n) {  // whole chunks unmasked, as avx2_exp_sum
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  auto silu8 = [&](__m256 v) { return _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_xor_ps(v, sign)))); };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i live = first_lanes(n - i);
    _mm256_maskstore_ps(y + i, live, silu8(_mm256_maskload_ps(x + i, live)));
  }
}

// 8 values a step (sign-extended from 8 bytes, converted, one multiply), each row's tail under a
// mask; the scalar twin's one rounding each.
void avx2_dequantize_kv_rows(const int8_t* q, const float* scales, int64_t rows, int64_t n, float* out) {
  const int64_t groups = (n + kQuantGroup - 1) / kQuantGroup;
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* qr = q + r * n;
    float* o = out + r * n;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr + i)));
      _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(scales[r * groups + i / kQuantGroup])));
    }
    if (i < n) {
      alignas(16) int8_t tail[16] = {};
      std::memcpy(tail, qr + i, static_cast<size_t>(n - i));
      const __m256i live = first_lanes(n - i);
      const __m256i v = _mm256_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
      _mm256_maskstore_ps(o + i, live, _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(scales[r * groups + i / kQuantGroup])));
    }
  }
}

// A group of 32 inputs at a time: the scalar reference's steps on 8 lanes (the absolute maximum
// is exact in any order; cvtps rounds to nearest even as its 1.5 * 2^23 trick does), then the
// bytes packed in order and summed (vpmaddubsw + vpmaddwd, then across the lanes: exact) into the
// group's sum, which the integer kernels' offset needs. Decode
// quantises every matmul's input on one thread: scalar, this was a twentieth of a two-thread
// q4 decode's time on the calling thread.
void avx2_quantize_rows(const float* x, int64_t M, int64_t ldx, int64_t K, QuantizedRows* out, int64_t m0) {
  const int64_t G = out->groups;  // every byte of the rows, padding included, is written
  const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i byte_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the packs' lane interleave
  for (int64_t m = m0; m < m0 + M; ++m)
    for (int64_t g = 0; g < G; ++g) {
      const float* xg = x + (m - m0) * ldx + g * kQuantGroup;  // row m of out is row m - m0 of x
      const int64_t live = std::min<int64_t>(kQuantGroup, K - g * kQuantGroup);
      __m256 v[4];
      __m256 amax = _mm256_setzero_ps();
      for (int i = 0; i < 4; ++i) {  // columns past K load as 0
        v[i] = live == kQuantGroup ? _mm256_loadu_ps(xg + 8 * i) : _mm256_maskload_ps(xg + 8 * i, first_lanes(live - 8 * i));
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
      }
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      const float a = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
      const float sx = a / 127.0f;
      const __m256 inv = _mm256_set1_ps(a > 0.0f ? 1.0f / sx : 0.0f);
      out->scale[m * G + g] = sx;
      __m256i q[4];
      for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], inv), lo), hi));
      const __m256i bytes = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])), byte_order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->q.data() + (m * G + g) * kQuantGroup), bytes);
      const __m256i lanes = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), bytes), _mm256_set1_epi16(1));
      __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
      sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4e));
      out->group_sum[m * G + g] = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xb1)));
    }
}

#pragma GCC pop_options

// The same integer path on AVX-VNNI, for the "avx2vnni" set. Its own target region: these
// templates must be compiled with AVX-VNNI, and nothing of the plain set with it.
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")

namespace vnni_integer {
constexpr bool kVnni = true;
#include "ops/dot_kernels_avx2_int.inc"
}  // namespace vnni_integer

void avx2vnni_quantized_rows(const QuantizedRows& a, int64_t m0, int64_t M, const Weight& w, int64_t n0, int64_t n1,
                             float* y, int64_t ldy) {
  vnni_integer::quantized_rows(a, m0, M, w, n0, n1, y, ldy);
}

void avx2vnni_rows(const float* x, int64_t M, int64_t ldx, const Weight& w, int64_t n0, int64_t n1, float* y,
                   int64_t ldy) {
  if (w.quant == WeightQuant::kNone) return avx2_rows(x, M, ldx, w, n0, n1, y, ldy);
  rows_on_quantized_inputs(avx2vnni_quantized_rows, x, M, ldx, w, n0, n1, y, ldy);
}

#pragma GCC pop_options

const KernelSet kAvx2{"avx2",
                      avx2_rows,
                      avx2_quantized_rows,
                      avx2_quantize_rows,
                      avx2_dot,
                      avx2_axpy,
                      avx2_dot_rows,
                      avx2_axpy_rows,
                      avx2_dot_rows_block,
                      avx2_axpy_rows_block,
                      avx2_exp_sum,
                      avx2_dot_rows_block_bf16,
                      avx2_axpy_rows_block_bf16,
                      nullptr,
                      nullptr,
                      avx2_silu,
                      avx2_dequantize_kv_rows,
                      avx2_dot_rows_block_q8,
                      avx2_axpy_rows_block_q8};

// The AVX2 set with the integer path on AVX-VNNI; everything else is the AVX2 set's.
const KernelSet kAvx2Vnni = [] {
  KernelSet set = kAvx2;
  set.isa = "avx2vnni";
  set.rows = avx2vnni_rows;
  set.quantized_rows = avx2vnni_quantized_rows;
  return set;
}();

}  // namespace

const KernelSet* avx2_kernels() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok ? &kAvx2 : nullptr;
}

const KernelSet* avx2vnni_kernels() {
  static const bool ok = avx2_kernels() != nullptr && __builtin_cpu_supports("avxvnni");
  return ok ? &kAvx2Vnni : nullptr;
}

}  // namespace moepp::kernels
