// Owned weight allocation, element access and sizes for every weight format.
#include "tensor/weight.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "platform/thread_pool.h"

namespace moepp {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// A private anonymous mapping of `length` bytes starting on an `align` boundary (4 KiB or
// 2 MiB, then with transparent-huge-page advice), unmapped when the last owner goes.
std::shared_ptr<void> map_aligned(size_t length, size_t align) {
  void* mapped = mmap(nullptr, length + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t begin = (base + align - 1) & ~(align - 1);
  if (begin > base) munmap(mapped, begin - base);
  if (base + align > begin) munmap(reinterpret_cast<void*>(begin + length), base + align - begin);
  void* p = reinterpret_cast<void*>(begin);
  if (align == kHugePage) madvise(p, length, MADV_HUGEPAGE);
  return std::shared_ptr<void>(p, [length](void* q) { munmap(q, length); });
}

}  // namespace

std::shared_ptr<void> allocate_aligned(size_t bytes) {
  const size_t size = (bytes + 63) / 64 * 64 + 64;
  if (bytes < (size_t{256} << 10)) return std::shared_ptr<void>(std::aligned_alloc(64, size), std::free);
  // Large weights stream through the kernels once per token: transparent huge pages save the
  // TLB misses, and starting on a huge-page boundary lets every whole 2 MiB of the block be one
  // (with the heap's 64-byte alignment a 6 MiB expert matrix got 2 of its 3; mixtral-1.8b bf16
  // decode went from 0.17 to 0.48 of the read bandwidth; under a hypervisor a TLB miss costs a
  // two-level page walk: moepp-1b's 3 MiB down projections on small pages made the prefill's
  // packing pass stall, 26% of its profile against 13%). Advice only: where THP is off,
  // nothing changes. A mapping of its own is given back to the system when freed, where the
  // heap would keep it: loading replaces each matrix by its quantised or interleaved copy.
  // Blocks from 256 KiB on get such a mapping too: the heap keeps what the freed originals of
  // the attention matrices leave behind.
  const size_t length = (size + 4095) / 4096 * 4096;  // the tail stays in small pages
  return map_aligned(length, bytes >= kHugePage ? kHugePage : 4096);
}

std::shared_ptr<void> allocate_resident(size_t bytes) {
  // Weights read once per token live wholly on huge pages. allocate_aligned leaves the tail past
  // a block's last whole 2 MiB in small pages; for a 3.2 MiB q8 expert matrix that is 37% of
  // its bytes and all of its scales, and under this hypervisor a small-page stream reads 13-28%
  // slower (q8 one-token products on the same matrices, alternated in one process: 17.8-19.0
  // -> 21.4-23.0 GB/s; docs/performance.md, session 7). So blocks share 128 MiB slabs
  // on huge pages, cut in 64-byte aligned pieces; a slab's pages are only resident once touched,
  // so the room a slab leaves unused costs at most the one huge page a piece ends in. Blocks too
  // big to share a slab get a mapping of their own rounded up to whole huge pages. Each piece
  // shares ownership of its slab: a slab is unmapped when its last piece is freed. Pieces are
  // never reused, which suits weights kept for the model's life.
  constexpr size_t kSlab = size_t{128} << 20;
  const size_t size = (bytes + 63) / 64 * 64 + 64;
  if (bytes < (size_t{64} << 10)) return allocate_aligned(bytes);
  if (size > kSlab / 4) return map_aligned((size + kHugePage - 1) / kHugePage * kHugePage, kHugePage);
  static std::mutex mutex;
  static std::weak_ptr<void> slab;  // weak: a slab whose pieces are all freed goes at once
  static size_t used = 0;
  const std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<void> current = slab.lock();
  if (current == nullptr || used + size > kSlab) {
    current = map_aligned(kSlab, kHugePage);
    if (current == nullptr) return nullptr;
    slab = current;
    used = 0;
  }
  void* piece = static_cast<char*>(current.get()) + used;
  used += size;
  return std::shared_ptr<void>(current, piece);
}

Weight make_owned_weight(DType dtype, int64_t rows, int64_t cols) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  const size_t bytes = static_cast<size_t>(rows * cols) * dtype_size(dtype);
  w.owner = allocate_aligned(bytes);
  w.data = w.owner.get();
  return w;
}

size_t Weight::nbytes() const {
  const size_t n = static_cast<size_t>(rows * cols);
  switch (quant) {
    case WeightQuant::kNone: return n * dtype_size(dtype);
    case WeightQuant::kQ8: return n + static_cast<size_t>(rows * groups_per_row()) * sizeof(float);
    case WeightQuant::kQ4: return static_cast<size_t>(rows * (q4_row_bytes() + groups_per_row() * 4));
  }
  return 0;
}

namespace {

// 8 blocks of 8 rows a task when interleaving f32/bf16 (64 rows), 4 blocks of 16 for q8/q4: each
// task zeroes and fills its own blocks, so the pages are first touched (and zeroed by the system)
// on the threads that fill them.
constexpr int64_t kBlocksPerTask = 8;

}  // namespace

Weight interleave_quantized_rows(const Weight& shape, const std::function<QuantizedRowRange(int64_t, int64_t)>& source,
                                 ThreadPool* pool) {
  const int64_t blocks = (shape.rows + kQuantBlockRows - 1) / kQuantBlockRows, G = shape.groups_per_row();
  Weight out;
  out.dtype = DType::kF32;
  out.quant = shape.quant;
  out.rows = shape.rows;
  out.cols = shape.cols;
  out.interleaved = true;
  const size_t block_bytes = static_cast<size_t>(G * out.interleaved_group_stride());
  out.owner = allocate_resident(static_cast<size_t>(blocks) * block_bytes);
  if (out.owner == nullptr) throw std::bad_alloc();
  uint8_t* p = static_cast<uint8_t*>(out.owner.get());
  out.data = p;
  out.scales = reinterpret_cast<const float*>(p + kQuantBlockRows * out.group_bytes());  // block 0, group 0's scales
  float* scales = const_cast<float*>(out.scales);
  const bool q8 = out.quant == WeightQuant::kQ8;
  // Block b of 16 rows from the source, then into the layout.
  auto fill_block = [&](int64_t b) {
    const int64_t r0 = b * kQuantBlockRows, r1 = std::min(out.rows, (b + 1) * kQuantBlockRows);
    const QuantizedRowRange range = source(r0, r1);
    const Weight& w = range.rows;  // row-major: row r of `out` is its row r - r0 + first
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t wr = r - r0 + range.first;
      for (int64_t g = 0; g < G; ++g) {
        scales[out.scale_index(r, g)] = w.scales[w.scale_index(wr, g)];
        // Row r's 4 bytes of each 64-byte chunk of the group (interleaved_byte of column 0 of the chunk).
        uint8_t* lane = p + out.group_offset(r, g) + Weight::interleaved_byte(out.quant, r, 0);
        const uint8_t* src = static_cast<const uint8_t*>(w.data) + w.group_offset(wr, g);  // row-major
        // A row-major row's last group may be short: its padding stays zero.
        const int64_t cols = std::min(kQuantGroup, out.cols - g * kQuantGroup);
        if (cols == kQuantGroup) {  // whole groups a word at a time (loading quantises billions of weights)
          if (q8) {
            for (int64_t k = 0; k < kQuantGroup / 4; ++k) std::memcpy(lane + 64 * k, src + 4 * k, 4);
          } else {
            // Chunk k: byte i holds column 8k + i (low nibble) and 8k + 4 + i (high); the source
            // byte b holds columns 2b (low) and 2b + 1 (high).
            for (int64_t k = 0; k < kQuantGroup / 8; ++k)
              for (int i = 0; i < 4; ++i) {
                const int lo = (src[4 * k + i / 2] >> (4 * (i % 2))) & 0x0f;
                const int hi = (src[4 * k + 2 + i / 2] >> (4 * (i % 2))) & 0x0f;
                lane[64 * k + i] = static_cast<uint8_t>(lo | hi << 4);
              }
          }
          continue;
        }
        uint8_t* group = p + out.group_offset(r, g);
        for (int64_t k = 0; k < cols; ++k) {
          const int64_t at = Weight::interleaved_byte(out.quant, r, k);
          if (q8) group[at] = src[k];
          else group[at] |= static_cast<uint8_t>(((src[k / 2] >> (4 * (k % 2))) & 0x0f) << Weight::interleaved_nibble_shift(k));
        }
      }
    }
  };
  // A block at a time, so that a source's buffer stays one block (also where one task covers the
  // whole matrix: no pool, or one thread).
  parallel_ranges(pool, blocks, kBlocksPerTask / 2, [&](int64_t b0, int64_t b1) {
    std::memset(p + b0 * block_bytes, 0, static_cast<size_t>(b1 - b0) * block_bytes);
    for (int64_t b = b0; b < b1; ++b) fill_block(b);
  });
  return out;
}

Weight interleave_rows(const Weight& w, ThreadPool* pool) {
  if (w.interleaved || w.empty()) return w;
  if (w.quant != WeightQuant::kNone)
    return interleave_quantized_rows(w, [&w](int64_t r0, int64_t) { return QuantizedRowRange{w, r0}; }, pool);
  Weight out;  // storage of the padded size, kept for the model's life
  out.dtype = w.dtype;
  out.rows = w.rows;
  out.cols = w.cols;
  out.interleaved = true;
  const int64_t blocks = (w.rows + 7) / 8, cols = out.padded_cols();
  const size_t esize = dtype_size(w.dtype);
  const size_t block_bytes = static_cast<size_t>(8 * cols) * esize;
  out.owner = allocate_resident(static_cast<size_t>(blocks) * block_bytes);
  if (out.owner == nullptr) throw std::bad_alloc();
  out.data = out.owner.get();
  uint8_t* base = static_cast<uint8_t*>(out.owner.get());
  parallel_ranges(pool, blocks, kBlocksPerTask, [&](int64_t b0, int64_t b1) {
    std::memset(base + b0 * block_bytes, 0, static_cast<size_t>(b1 - b0) * block_bytes);
    const int64_t r1 = std::min(w.rows, b1 * 8);
    if (w.dtype == DType::kBF16) {
      for (int64_t r = b0 * 8; r < r1; ++r) {
        const uint16_t* src = w.bf16() + r * w.cols;
        uint16_t* dst = static_cast<uint16_t*>(out.owner.get()) + out.element_index(r, 0) - 1;  // chunk 0's pairs
        for (int64_t c0 = 0; c0 < w.cols; c0 += 16, dst += 128)
          for (int64_t j = 0; j < 8; ++j) {  // (column c0 + 8 + j, column c0 + j); padding stays zero
            if (c0 + 8 + j < w.cols) dst[2 * j] = src[c0 + 8 + j];
            if (c0 + j < w.cols) dst[2 * j + 1] = src[c0 + j];
          }
      }
      return;
    }
    const uint8_t* src = static_cast<const uint8_t*>(w.data);
    for (int64_t r = b0 * 8; r < r1; ++r)
      for (int64_t c = 0; c < w.cols; c += 8) {
        const int64_t n = std::min<int64_t>(8, w.cols - c);
        std::memcpy(base + out.element_index(r, c) * esize, src + (r * w.cols + c) * esize, static_cast<size_t>(n) * esize);
      }
  });
  return out;
}

float Weight::at(int64_t r, int64_t c) const {
  const int64_t i = element_index(r, c);
  switch (quant) {
    case WeightQuant::kNone: return dtype == DType::kF32 ? f32()[i] : bf16_to_f32(bf16()[i]);
    case WeightQuant::kQ8:
      return scales[scale_index(r, c / kQuantGroup)] * static_cast<float>(q8_value(r, c));
    case WeightQuant::kQ4: {
      return scales[scale_index(r, c / kQuantGroup)] * static_cast<float>(q4_nibble(r, c) - 8);
    }
  }
  return 0.0f;
}

void Weight::row_to_f32(int64_t r, float* out) const {
  if (quant == WeightQuant::kNone && !interleaved) {
    if (dtype == DType::kF32) std::copy(f32() + r * cols, f32() + (r + 1) * cols, out);
    else std::transform(bf16() + r * cols, bf16() + (r + 1) * cols, out, bf16_to_f32);
    return;
  }
  for (int64_t c = 0; c < cols; ++c) out[c] = at(r, c);
}

const char* weight_format_name(const Weight& w) {
  if (w.quant != WeightQuant::kNone) return quant_name(w.quant);
  return w.dtype == DType::kF32 ? "f32" : "bf16";
}

const char* quant_name(WeightQuant q) {
  switch (q) {
    case WeightQuant::kQ8: return "q8";
    case WeightQuant::kQ4: return "q4";
    case WeightQuant::kNone: break;
  }
  return "none";
}

}  // namespace moepp
