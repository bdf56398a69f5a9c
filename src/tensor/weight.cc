// Owned weight allocation.
#include "tensor/weight.h"

#include <cstdlib>

namespace moepp {

Weight make_owned_weight(DType dtype, int64_t rows, int64_t cols) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  const size_t bytes = static_cast<size_t>(rows * cols) * dtype_size(dtype);
  // 64-byte alignment so SIMD kernels can stream rows.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  w.owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  w.data = p;
  return w;
}

}  // namespace moepp
