// The row-dot-product kernels behind matmul, one implementation per instruction set behind one
// dispatch point. Every implementation computes the same bits, so a batch of tokens gives each
// token exactly what it would get alone (the server's batching and speculative verification
// rely on it) and the scalar twin is a bit-exact reference for the SIMD code.
//
// The contract, for one output y = dot(x, W row n) over K columns:
//   - K is zero-padded to a multiple of 8; lane j (0..7) accumulates
//     lane_j = fma(x[k + j], w(n, k + j), lane_j) for k = 0, 8, 16, ... in that order;
//   - y = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
//   - w(n, c) is the weight as f32: exact for f32 and bf16, float(q) * scale (one f32
//     multiply) for group-quantised q8 and q4.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/weight.h"

namespace moepp::kernels {

// y[m * ldy + (n - n0)] = dot(x[m * ldx ...], W row n) for m < M, n0 <= n < n1.
using RowsKernel = void (*)(const float* x /*[M, ldx]*/, int64_t M, int64_t ldx, const Weight& w,
                            int64_t n0, int64_t n1, float* y /*[M, ldy]*/, int64_t ldy);

struct KernelSet {
  const char* isa;  // "scalar", "avx2"
  RowsKernel rows;
};

// The scalar reference (always present) and the AVX2+FMA set (null when the CPU lacks it).
const KernelSet& scalar_kernels();
const KernelSet* avx2_kernels();

// The set in use: the best the CPU supports, or the one MOEPP_KERNELS names ("scalar", "avx2").
const KernelSet& active_kernels();
// Every set this CPU can run, best last (tests run each one).
std::vector<const KernelSet*> available_kernels();

// Dequantised weight element, exactly as every kernel computes it.
float weight_element(const Weight& w, int64_t n, int64_t c);

}  // namespace moepp::kernels
