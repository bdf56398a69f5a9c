// How the C heap treats the large, short-lived buffers of a forward pass.
#pragma once

namespace moepp {

// Keeps freed buffers of up to 32 MiB (and 256 MiB of free heap) in the process's heap instead of returning them to the
// system. A prefill allocates several MiB of activations per layer (gathered expert inputs,
// gate/up products, attention scores) and frees them a moment later; glibc hands blocks of that
// size back with munmap or a heap trim, so every layer paid page faults and zeroing of fresh
// pages again (a tenth of a pp512 profile). Weights are not affected: they have mappings of
// their own (tensor/weight.cc). Call once, before the first large allocation.
void keep_freed_buffers_for_reuse();

// Returns the free heap kept above to the system (glibc's malloc_trim): where one process runs
// several models one after another (`moepp bench`), so that one model's peak memory does not
// include the buffers another one freed.
void return_free_heap_to_system();

}  // namespace moepp
