// Shared by the fuzz targets: reads every byte a parsed entry points at, so a bad pointer or
// length becomes an ASan report instead of passing silently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/tensor_source.h"

namespace moepp {

inline void touch_entry(const TensorEntry& e) {
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < e.nbytes; ++i) sink = sink ^ e.data[i];
  (void)sink;
}

}  // namespace moepp
