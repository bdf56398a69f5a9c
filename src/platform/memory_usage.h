// The process's resident memory as the kernel counts it (/proc/self/status), for reporting peak
// memory next to the bytes a model needs.
#pragma once

#include <cstdint>

namespace moepp {

// Peak resident set size (VmHWM) in bytes since the process started or since the last
// reset_peak_resident_bytes(); -1 where /proc does not say.
int64_t peak_resident_bytes();

// Starts a new peak from the current resident size (Linux: "5" to /proc/self/clear_refs).
// Returns false where the kernel does not allow it; the peak then covers the whole process.
bool reset_peak_resident_bytes();

}  // namespace moepp
