// Addresses for software prefetch a distance ahead in a stream of weights.
#pragma once

#include <cstdint>

namespace moepp::kernels {

// `bytes` past p, for _mm_prefetch only. Requests run ahead of the stream and, near its end, name
// bytes past the weights or a buffer: the instruction never faults there, but forming such a
// pointer by pointer arithmetic would be undefined behaviour, so the distance is added to the
// address as an integer.
inline const char* bytes_ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

}  // namespace moepp::kernels
