// Random weights for models built without a checkpoint (benchmark shapes, tests, training from
// scratch). Counter-based: element i of a fill is a function of (seed, i) alone, so large
// fills split over threads and give the same values whatever the split.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace moepp {

// out[i] (n values of dtype kF32 or kBF16, rounded to nearest even) ~ mean + stddev * z, z the
// sum of four independent uniforms centred and scaled to unit variance (Irwin-Hall): the exact
// mean and variance of a normal, a bell shape, and tails cut at 3.46 standard deviations (a
// truncated normal, as many initialisations use). A few ns per value where std::normal_distribution
// took 15-20: mixtral-1.8b's 1.8B weights were most of a benchmark's start-up.
void fill_random_normal(uint64_t seed, float mean, float stddev, DType dtype, void* out /*[n]*/, int64_t n);

}  // namespace moepp
