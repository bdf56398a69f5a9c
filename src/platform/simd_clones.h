// Per-element loops built once per SIMD width and picked at load time (GCC target_clones):
// the binary is otherwise built for the x86-64 baseline (SSE2, 4 floats a step). Only for code
// whose bits do not depend on the vector width (independent elements, sums kept in order).
#pragma once

#define MOEPP_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
