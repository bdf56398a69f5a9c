// A 2-D weight matrix [rows, cols] (row-major, PyTorch [out, in]) in f32, bf16, or a
// group-quantised format (q8: int8, q4: 4-bit; one f32 scale per group of kQuantGroup values
// along a row), either a zero-copy view into a mapped checkpoint or memory it owns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tensor/dtype.h"

namespace moepp {

class ThreadPool;

enum class WeightQuant : uint8_t { kNone, kQ8, kQ4 };
constexpr int64_t kQuantGroup = 32;  // values per scale; a row's last group may be shorter
constexpr int64_t kQuantBlockRows = 16;  // rows of an interleaved q8/q4 block

struct Weight {
  DType dtype = DType::kF32;  // kF32 or kBF16 when quant == kNone
  WeightQuant quant = WeightQuant::kNone;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;     // f32/bf16 [rows, cols]; q8 int8 [rows, cols]; q4 [rows, q4_row_bytes()] nibble pairs
  const float* scales = nullptr;  // quantised only: [rows, groups_per_row()] (interleaved: see scale_index)
  std::shared_ptr<void> owner;    // keeps owned memory alive (null for mapped views)
  // Rows in blocks whose chunks lie side by side (row-interleaved), so a kernel reading a block
  // of rows at once streams memory in order (interleave_rows): blocks of 8 rows of 8-column chunks
  // for f32; for bf16 16-column chunks stored as vdpbf16ps reads them (pairs: see element_index),
  // so batches multiply the stored weights in place instead of reordering every panel first; for
  // q8/q4 blocks of 16 rows, lane-major (see group_offset), so that one integer register holds
  // one 32-bit lane of each of 16 rows and a group's sum ends in one lane per row.
  bool interleaved = false;

  bool empty() const { return data == nullptr; }
  int64_t groups_per_row() const { return (cols + kQuantGroup - 1) / kQuantGroup; }
  int64_t q4_row_bytes() const { return (cols + 1) / 2; }
  const float* f32() const { return static_cast<const float*>(data); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data); }
  const int8_t* q8() const { return static_cast<const int8_t*>(data); }
  const uint8_t* q4() const { return static_cast<const uint8_t*>(data); }
  // f32/bf16 interleaved: columns per stored row, zero-padded (to 8 for f32, 16 for bf16).
  int64_t padded_cols() const { return dtype == DType::kBF16 ? (cols + 15) / 16 * 16 : (cols + 7) / 8 * 8; }
  // Element (r, c) of an f32/bf16 weight in its layout (row-major or interleaved). Interleaved,
  // rows are padded to a multiple of 8 and block b = r / 8 holds, for f32, [cols / 8][8 rows][8
  // values]; for bf16, [cols / 16][8 rows][8 lanes][2]: lane j of chunk q holds column 16q + 8 + j
  // first (the low half of a 32-bit lane) and column 16q + j second (the high half).
  int64_t element_index(int64_t r, int64_t c) const {
    if (!interleaved) return r * cols + c;
    const int64_t block = (r / 8) * 8 * padded_cols();
    if (dtype != DType::kBF16) return block + (c / 8) * 64 + (r % 8) * 8 + c % 8;
    const int64_t j = c % 8, high = (c % 16) < 8 ? 1 : 0;
    return block + (c / 16) * 128 + (r % 8) * 16 + 2 * j + high;
  }
  // q8/q4: bytes of one row's stored group (32 values).
  int64_t group_bytes() const { return quant == WeightQuant::kQ8 ? kQuantGroup : kQuantGroup / 2; }
  // Rows of an interleaved block: 8 for f32/bf16, 16 for q8/q4.
  int64_t block_rows() const { return quant == WeightQuant::kNone ? 8 : kQuantBlockRows; }
  // interleaved q8/q4: group g of a block of 16 rows is 64-byte chunks, then the 16 rows' f32
  // scales (`scales` points at block 0's first scales), so one stream holds values and scales:
  //   q8: chunk k (0..7) holds columns 4k .. 4k + 3 of row j in bytes 4j .. 4j + 3 (576 bytes a
  //       group with the scales);
  //   q4: chunk k (0..3) holds columns 8k .. 8k + 3 of row j in the low nibbles of bytes
  //       4j .. 4j + 3 and columns 8k + 4 .. 8k + 7 in their high nibbles (320 bytes a group).
  // Every chunk is one 512-bit register (two 256-bit halves of 8 rows): one vpdpbusd per chunk
  // (two per q4 chunk) adds 4 columns to each row's lane, with the input's 4 bytes broadcast.
  static constexpr int64_t interleaved_group_values(WeightQuant q) {  // the chunks' bytes; the scales follow
    return kQuantBlockRows * (q == WeightQuant::kQ8 ? kQuantGroup : kQuantGroup / 2);
  }
  static constexpr int64_t interleaved_group_stride(WeightQuant q) {
    return interleaved_group_values(q) + kQuantBlockRows * static_cast<int64_t>(sizeof(float));
  }
  int64_t interleaved_group_stride() const { return interleaved_group_stride(quant); }
  // Where column k (0..31) of a group of row r lies in an interleaved group: its byte and, for q4,
  // the shift of its nibble in that byte (0 low, 4 high).
  static constexpr int64_t interleaved_byte(WeightQuant q, int64_t r, int64_t k) {
    return (q == WeightQuant::kQ8 ? k / 4 : k / 8) * 64 + 4 * (r % kQuantBlockRows) + k % 4;
  }
  static constexpr int interleaved_nibble_shift(int64_t k) { return k % 8 < 4 ? 0 : 4; }
  // Byte offset of group g of row r: row-major, the row's group_bytes() values in column order;
  // interleaved, the start of the group of r's block of 16 rows (the layout above).
  int64_t group_offset(int64_t r, int64_t g) const {
    if (interleaved) return ((r / kQuantBlockRows) * groups_per_row() + g) * interleaved_group_stride();
    return (quant == WeightQuant::kQ8 ? r * cols : r * q4_row_bytes()) + g * group_bytes();
  }
  // q8: element (r, c) as stored (the integer value).
  int q8_value(int64_t r, int64_t c) const {
    const int64_t at = group_offset(r, c / kQuantGroup);
    const int64_t k = c % kQuantGroup;
    if (interleaved) return q8()[at + interleaved_byte(WeightQuant::kQ8, r, k)];
    return q8()[at + k];
  }
  // q4: element (r, c) as stored, 0..15 (the value + 8). A row-major row packs columns 2k (low
  // nibble) and 2k + 1 (high) in a byte; interleaved, see above.
  int q4_nibble(int64_t r, int64_t c) const {
    const uint8_t* group = q4() + group_offset(r, c / kQuantGroup);
    const int64_t k = c % kQuantGroup;
    if (interleaved) return (group[interleaved_byte(WeightQuant::kQ4, r, k)] >> interleaved_nibble_shift(k)) & 0x0f;
    return (group[k / 2] >> (4 * (k % 2))) & 0x0f;
  }
  int64_t scale_index(int64_t r, int64_t g) const {
    if (interleaved) return group_offset(r, g) / static_cast<int64_t>(sizeof(float)) + r % kQuantBlockRows;
    return r * groups_per_row() + g;
  }
  // Bytes a pass over the whole matrix reads (values and scales; padding not counted).
  size_t nbytes() const;
  // Element (r, c) as f32 (slow path: tests, small tensors).
  float at(int64_t r, int64_t c) const;
  // Row r as f32 into out[cols]: a copy or a bf16 widening for row-major f32/bf16 (norm weights,
  // embedding rows: once or twice per layer and token), at() otherwise.
  void row_to_f32(int64_t r, float* out) const;
};

// 64-byte aligned memory for SIMD rows, with 64 bytes of slack for tail reads; freed when the
// last owner goes. Null when the system has no memory left. Blocks from 256 KiB on get a
// mapping of their own, which starts on a huge-page boundary from 2 MiB on (see weight.cc).
std::shared_ptr<void> allocate_aligned(size_t bytes);
// The same for weights kept for the model's life (the interleaved copies the kernels read):
// blocks from 64 KiB on lie wholly on huge pages, cut from shared slabs (see weight.cc).
std::shared_ptr<void> allocate_resident(size_t bytes);

// Allocates an owned weight of the given shape, contents uninitialised.
Weight make_owned_weight(DType dtype, int64_t rows, int64_t cols);

// A row-interleaved copy (interleaved) of a weight, zero-padded; blocks of rows spread over
// `pool` when given (the same bytes either way).
Weight interleave_rows(const Weight& w, ThreadPool* pool = nullptr);

// Row-major q8/q4 rows r0 .. r1 - 1 for interleave_quantized_rows: `rows` holds them from its row
// `first` on (a view of a whole matrix, first = r0; or a task's own buffer of just those rows,
// first = 0).
struct QuantizedRowRange {
  Weight rows;
  int64_t first = 0;
};
// The interleaved copy of a q8/q4 weight shaped as `shape` (quant, rows, cols), filled one block of
// 16 rows at a time from source(r0, r1) (tasks of 4 blocks over the pool), each block's rows used
// before the thread's next call: interleave_rows passes views of the row-major matrix,
// quantize_interleaved quantises each block on its own.
Weight interleave_quantized_rows(const Weight& shape, const std::function<QuantizedRowRange(int64_t, int64_t)>& source,
                                 ThreadPool* pool);

const char* weight_format_name(const Weight& w);  // "f32", "bf16", "q8", "q4"
const char* quant_name(WeightQuant q);           // "none", "q8", "q4"

}  // namespace moepp
