#include "platform/heap_tuning.h"

#include <cstdlib>  // defines __GLIBC__ on glibc systems

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace moepp {

void keep_freed_buffers_for_reuse() {
#if defined(__GLIBC__)
  // Setting both thresholds also turns off glibc's sliding mmap threshold, which otherwise
  // trims the heap again whenever its free top exceeds twice the largest block freed so far.
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems.
  constexpr int kKeep = 32 << 20;
  mallopt(M_MMAP_THRESHOLD, kKeep);
  mallopt(M_TRIM_THRESHOLD, 8 * kKeep);
#endif
}

void return_free_heap_to_system() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace moepp
