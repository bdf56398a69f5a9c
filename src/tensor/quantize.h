// Group quantisation of weights: symmetric, one f32 scale per kQuantGroup values of a row.
// q8: q = round(w * (1 / s)), s = max|w| / 127; q4: q = round(w * (1 / s)) + 8 in [0, 15],
// s = max|w| / 7; round halves away from zero (lround), w * (1 / s) in f32.
#pragma once

#include "base/status.h"
#include "platform/thread_pool.h"
#include "tensor/weight.h"

namespace moepp {

// A stored quantised tensor NAME keeps its scales in NAME + this suffix (`moepp quantize`).
constexpr const char* kQuantScalesSuffix = ".moepp_scales";

// Returns a quantised copy of an f32/bf16 weight; rows spread over `pool` when given (the same
// bytes either way: every row is quantised on its own).
Result<Weight> quantize_weight(const Weight& w, WeightQuant quant, ThreadPool* pool = nullptr);

// interleave_rows(quantize_weight(w, quant)) without the row-major copy of the whole matrix
// between them: each block of 16 rows is quantised into a small buffer of its thread's own and
// interleaved from there (loading with --weights). The same bytes.
Result<Weight> quantize_interleaved(const Weight& w, WeightQuant quant, ThreadPool* pool = nullptr);

}  // namespace moepp
