// How the one-token kernels walk a thread's rows: as several memory streams at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace moepp::kernels {

// Blocks 0 .. blocks - 1 of a thread's range as S memory streams: the range cut into S equal
// parts, and fn(k, std::integral_constant<int, S>) called on block i of every part together
// (k[s] = i + s * part), i = 0, 1, ..; the blocks the cut leaves over go one at a time, as
// fn(&k, std::integral_constant<int, 1>). The hardware prefetcher keeps more lines in flight for
// several streams than for one (docs/performance.md, "Two streams per thread" and "Four streams
// per thread"). Every block still gets its own sums in its own order, so the order of the calls
// changes no bits.
template <int S, class Fn>
inline void blocks_as_streams(int64_t blocks, Fn fn) {
  const int64_t part = blocks / S;
  for (int64_t i = 0; i < part; ++i) {
    int64_t k[S];
    for (int s = 0; s < S; ++s) k[s] = i + s * part;
    fn(static_cast<const int64_t*>(k), std::integral_constant<int, S>{});
  }
  for (int64_t k = S * part; k < blocks; ++k) fn(static_cast<const int64_t*>(&k), std::integral_constant<int, 1>{});
}

// blocks_as_streams over the whole blocks of `block_rows` rows (8 for f32/bf16, 16 for q8/q4) from
// row `first`, whose outputs start at y (row r at y[r - first]): fn(rows, outs, streams) gets each
// block's first row and its outputs.
template <int S, class Fn>
inline void row_blocks_as_streams(int64_t block_rows, int64_t first, int64_t blocks, float* y, Fn fn) {
  blocks_as_streams<S>(blocks, [&](const int64_t* k, auto streams) {
    constexpr int N = decltype(streams)::value;
    int64_t rows[N];
    float* outs[N];
    for (int s = 0; s < N; ++s) {
      rows[s] = first + block_rows * k[s];
      outs[s] = y + block_rows * k[s];
    }
    fn(static_cast<const int64_t*>(rows), static_cast<float* const*>(outs), streams);
  });
}

// row_blocks_as_streams with S chosen at run time: 1, 2 or 4 (one_token_streams(kernel)).
template <class Fn>
inline void row_blocks_as_n_streams(int streams, int64_t block_rows, int64_t first, int64_t blocks, float* y, Fn fn) {
  switch (streams) {
    case 1: return row_blocks_as_streams<1>(block_rows, first, blocks, y, fn);
    case 2: return row_blocks_as_streams<2>(block_rows, first, blocks, y, fn);
    default: return row_blocks_as_streams<4>(block_rows, first, blocks, y, fn);
  }
}

// Rows [n0, n1) of a layout in blocks of R rows: whole(first, last) once over the whole blocks
// inside the range (when there are any), and cut(n) for each block, starting at row n, that n0 or
// n1 cuts (a kernel computes all its rows and keeps those asked for: copy_cut_rows).
template <class Whole, class Cut>
inline void split_row_blocks(int64_t R, int64_t n0, int64_t n1, Whole whole, Cut cut) {
  if (n0 >= n1) return;
  const int64_t first = (n0 + R - 1) / R * R, last = std::max(first, n1 / R * R);
  if (n0 < first) cut(n0 / R * R);
  if (first < last) whole(first, last);
  if (last < n1) cut(last);
}

// From `part` [mr, R], a cut block's outputs for rows n .. n + R - 1, the rows inside [n0, n1)
// into y [mr, ldy] (row r at column r - n0).
inline void copy_cut_rows(const float* part, int64_t R, int mr, int64_t n, int64_t n0, int64_t n1, float* y,
                          int64_t ldy) {
  const int64_t r0 = std::max(n, n0), r1 = std::min(n + R, n1);
  for (int i = 0; i < mr; ++i) std::copy(part + i * R + (r0 - n), part + i * R + (r1 - n), y + i * ldy + (r0 - n0));
}

}  // namespace moepp::kernels
