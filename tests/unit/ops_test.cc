// Numeric building blocks against straightforward formulas: matmul (f32 and bf16 weights, odd
// sizes, several thread counts), RMSNorm, softmax, RoPE, bf16 rounding.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/dot_kernels.h"
#include "ops/elementwise.h"
#include "ops/exp_f32.h"
#include "ops/matmul.h"
#include "tensor/quantize.h"
#include "test_util.h"

namespace moepp {
namespace {

TEST(Ops, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Ops, MatmulMatchesNaiveForOddShapes) {
  std::mt19937 rng(1);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      const int64_t M = 5, N = 37, K = 29;
      const Weight w = testing::random_weight(rng, N, K, 1.0f, dt);
      const std::vector<float> x = testing::random_vector(rng, M * K);
      std::vector<float> y(M * N);
      matmul(pool, x.data(), M, w, y.data(), Precision{});
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w.at(n, k);
          EXPECT_NEAR(y[m * N + n], s, 1e-4 * (1 + std::fabs(s)));
        }
    }
  }
}

TEST(Ops, MatmulManyEqualsOneMatmulPerWeight) {
  // q, k and v in one job: the same bits as three matmuls, for every format (input quantised or
  // paired once), one token and batches, bf16-valued inputs; weights of another width or format
  // than the first fall back to one matmul each.
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const int64_t K = 72;
  for (WeightQuant quant : {WeightQuant::kNone, WeightQuant::kQ8, WeightQuant::kQ4}) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      std::vector<Weight> ws;
      for (int64_t N : {40, 24, 17}) {
        Weight w = testing::random_weight(rng, N, K, 1.0f, dt);
        if (quant != WeightQuant::kNone) w = quantize_weight(w, quant).value();
        ws.push_back(interleave_rows(w));
      }
      ws.push_back(testing::random_weight(rng, 9, K + 1, 1.0f, dt));  // another width: fallback
      for (int64_t M : {1, 5, 16}) {
        std::vector<float> x = testing::random_vector(rng, static_cast<size_t>(M * (K + 1)));
        for (float& v : x) v = round_bf16(v);
        const Precision p{ComputeDType::kBF16};
        std::vector<std::vector<float>> want(ws.size()), got(ws.size());
        for (size_t i = 0; i < ws.size(); ++i) {
          want[i].assign(static_cast<size_t>(M * ws[i].rows), -1.0f);
          got[i] = want[i];
          matmul(pool, x.data(), M, ws[i], want[i].data(), p);
        }
        matmul_many(pool, x.data(), M, {{&ws[0], got[0].data()}, {&ws[1], got[1].data()}, {&ws[2], got[2].data()}}, p);
        for (size_t i = 0; i < 3; ++i) ASSERT_EQ(got[i], want[i]) << quant_name(quant) << " M " << M << " weight " << i;
        matmul_many(pool, x.data(), M, {{&ws[0], got[0].data()}, {&ws[3], got[3].data()}}, p);
        ASSERT_EQ(got[3], want[3]) << "fallback, M " << M;
      }
    }
  }
}

TEST(Ops, RmsNormAndSoftmax) {
  std::mt19937 rng(2);
  const int64_t d = 19;
  const Weight g = testing::random_weight(rng, 1, d, 1.0f);
  const std::vector<float> x = testing::random_vector(rng, 2 * d);
  std::vector<float> y(2 * d);
  rms_norm(x.data(), 2, d, g, 1e-5f, y.data(), Precision{});
  for (int r = 0; r < 2; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += x[r * d + i] * x[r * d + i];
    const double inv = 1 / std::sqrt(ss / d + 1e-5);
    for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(y[r * d + i], g.at(0, i) * x[r * d + i] * inv, 1e-5);
  }
  float s[] = {1.0f, 2.0f, 3.0f, -INFINITY};
  softmax_inplace(s, 4);
  const double z = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  EXPECT_NEAR(s[0], std::exp(-2.0) / z, 1e-6);
  EXPECT_NEAR(s[2], 1.0 / z, 1e-6);
  EXPECT_EQ(s[3], 0.0f);
}

// softmax_inplace against its definition written out here: the largest non-NaN score (std::max,
// which skips NaN), exp_f32 of each score minus it, their sum in double in the documented lane
// order (ExpSumKernel), and each exponential times the sum's inverse as a float. The largest score
// is put at each position the maximum's 32 lanes and its tail treat differently.
TEST(Ops, SoftmaxEqualsItsDefinition) {
  std::mt19937 rng(11);
  auto reference = [](std::vector<float> x) {
    float largest = -INFINITY;
    for (float v : x) largest = std::max(largest, v);
    if (largest == -INFINITY) return std::vector<float>(x.size(), 0.0f);
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = exp_f32(x[i] - largest);
      lane[i % 8] += x[i];
    }
    const double sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    const float inv = static_cast<float>(1.0 / sum);
    for (float& v : x) v *= inv;
    return x;
  };
  for (int64_t n : {1, 7, 31, 32, 33, 75, 2051})
    for (int64_t at : {int64_t{0}, int64_t{7}, int64_t{8}, int64_t{31}, int64_t{32}, int64_t{63}, n - 1}) {
      if (at >= n) continue;
      std::vector<float> x = testing::random_vector(rng, static_cast<size_t>(n));
      for (float& v : x) v *= 3.0f;
      x[static_cast<size_t>(at)] = 5.0f;  // above every other score
      if (n > 40) x[40] = -INFINITY;      // a masked key
      const std::vector<float> want = reference(x);
      softmax_inplace(x.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(x[i]), std::bit_cast<uint32_t>(want[i])) << "n " << n << " largest at " << at << " element " << i;
    }
  // A NaN score is skipped by the maximum and makes every probability NaN, as the definition does.
  std::vector<float> with_nan = {1.0f, NAN, 2.0f};
  softmax_inplace(with_nan.data(), 3);
  for (float v : with_nan) EXPECT_TRUE(std::isnan(v));
  // Past the maximum's 32 lanes too: a row of masked keys and one NaN has no largest score, and is
  // a fully masked row (zeros), where a maximum that took the NaN would give NaNs.
  for (int64_t at : {5, 37}) {
    std::vector<float> masked(40, -INFINITY);
    masked[static_cast<size_t>(at)] = NAN;
    softmax_inplace(masked.data(), 40);
    for (float v : masked) EXPECT_EQ(v, 0.0f) << "NaN at " << at;
  }
}

// attention_probabilities in its three passes has the bits of the three steps it fuses, in both
// precisions, for a power-of-two divisor (a multiply by its inverse) and another (a division),
// a length with a tail past whole 8-lane blocks, and a fully masked row.
TEST(Ops, AttentionProbabilitiesEqualScaleSoftmaxAndRound) {
  std::mt19937 rng(12);
  for (Precision p : {Precision{ComputeDType::kF32}, Precision{ComputeDType::kBF16}})
    for (float divisor : {8.0f, std::sqrt(96.0f)})
      for (int64_t n : {1, 8, 37, 2051}) {
        std::vector<float> s = testing::random_vector(rng, static_cast<size_t>(n));
        for (float& v : s) v *= 40.0f;  // scores of a few units after the division
        if (n > 8) s[3] = -INFINITY;    // a masked key
        std::vector<float> want = s;
        for (float& v : want) v = p.round(p.round(v) / divisor);
        softmax_inplace(want.data(), n);
        p.round(want.data(), want.size());
        attention_probabilities(s.data(), n, divisor, p);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(s[i]), std::bit_cast<uint32_t>(want[i])) << "bf16 " << p.bf16() << " divisor " << divisor << " n " << n << " at " << i;
      }
  std::vector<float> masked(5, -INFINITY);
  attention_probabilities(masked.data(), 5, 8.0f, Precision{ComputeDType::kBF16});
  for (float v : masked) EXPECT_EQ(v, 0.0f);
}

// constant_expert_output: out = round(round(a1 * x) + round(a2 * v)) in the activation dtype, each
// element (a length with a tail past the SIMD widths).
TEST(Ops, ConstantExpertOutputRoundsEachTerm) {
  std::mt19937 rng(13);
  const int64_t n = 77;
  const std::vector<float> x = testing::random_vector(rng, n), v = testing::random_vector(rng, n);
  const float a1 = 0.3671875f, a2 = 0.6328125f;
  for (Precision p : {Precision{ComputeDType::kF32}, Precision{ComputeDType::kBF16}}) {
    std::vector<float> out(n);
    constant_expert_output(x.data(), v.data(), a1, a2, n, out.data(), p);
    for (int64_t i = 0; i < n; ++i) {
      const float want = p.round(p.round(a1 * x[i]) + p.round(a2 * v[i]));
      ASSERT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(want)) << "bf16 " << p.bf16() << " at " << i;
    }
  }
}

// Inputs quantised over the pool (ranges of 64 rows, each written at its own offset) equal one
// call over all rows, padding columns and group sums included. K = 70: a group of 6 columns.
TEST(Ops, InputsQuantisedOverThePoolEqualOneCall) {
  std::mt19937 rng(10);
  const int64_t M = 150, K = 70, ldx = 73;
  const std::vector<float> x = testing::random_vector(rng, M * ldx);
  kernels::QuantizedRows serial, pooled;
  kernels::quantize_activations(x.data(), M, ldx, K, &serial);
  ThreadPool pool(2);
  pooled.q.assign(serial.q.size(), 99);  // stale bytes a range must overwrite
  pooled.group_sum.assign(serial.group_sum.size(), 99);
  quantize_inputs(pool, x.data(), M, ldx, K, &pooled);
  EXPECT_EQ(pooled.groups, serial.groups);
  EXPECT_EQ(pooled.q, serial.q);
  EXPECT_EQ(pooled.scale, serial.scale);
  EXPECT_EQ(pooled.group_sum, serial.group_sum);
  int nonzero = 0;
  for (int8_t q : serial.q) nonzero += q != 0;
  EXPECT_GT(nonzero, M * K / 2);
}

// Inputs paired over the pool (ranges of 64 rows) equal those paired in one call, and f32
// inputs are refused either way (where the active set has the path at all).
TEST(Ops, InputsPairedOverThePoolEqualOneCall) {
  std::mt19937 rng(9);
  const int64_t M = 150, K = 70, ldx = 73;
  const Weight w = testing::random_weight(rng, 8, K, 1.0f, DType::kBF16);
  std::vector<float> x = testing::random_vector(rng, M * ldx);
  ThreadPool pool(2);
  kernels::PairedRows serial, pooled;
  EXPECT_FALSE(pair_inputs_for(pool, x.data(), M, ldx, w, &pooled));
  EXPECT_EQ(pooled.K, 0);
  for (float& v : x) v = round_bf16(v);
  x[120 * ldx + 5] = 1.0f + std::ldexp(1.0f, -12);  // one f32 value in the second range
  EXPECT_FALSE(pair_inputs_for(pool, x.data(), M, ldx, w, &pooled));
  x[120 * ldx + 5] = 1.0f;
  const bool has_path = pair_inputs_for(x.data(), M, ldx, w, &serial);
  ASSERT_EQ(pair_inputs_for(pool, x.data(), M, ldx, w, &pooled), has_path);
  if (!has_path) GTEST_SKIP() << "the active kernel set pairs no inputs";
  EXPECT_EQ(pooled.K, K);
  EXPECT_EQ(pooled.pairs, serial.pairs);
}

// The fused residual add + norm against its two steps written out per element, in f32 and bf16,
// with 1 and 2 threads over 37 rows (ranges of 16 rows and a short last one): the same bits.
TEST(Ops, AddRmsNormEqualsTheAddThenTheNorm) {
  std::mt19937 rng(7);
  const int64_t n = 37, d = 21;
  const Weight g = testing::random_weight(rng, 1, d, 1.0f);
  const std::vector<float> h0 = testing::random_vector(rng, n * d), branch = testing::random_vector(rng, n * d);
  for (Precision p : {Precision{}, Precision{ComputeDType::kBF16}}) {
    std::vector<float> want_h(h0), want_y(n * d);
    for (int64_t i = 0; i < n * d; ++i) want_h[i] = p.round(h0[i] + branch[i]);
    rms_norm(want_h.data(), n, d, g, 1e-5f, want_y.data(), p);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      std::vector<float> h(h0), y(n * d, NAN);
      add_rms_norm(pool, h.data(), branch.data(), n, d, g, 1e-5f, y.data(), p);
      for (int64_t i = 0; i < n * d; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(h[i]), std::bit_cast<uint32_t>(want_h[i])) << "h " << i;
        ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(want_y[i])) << "y " << i;
      }
    }
  }
}

// y += round(x * w) in the activation dtype, as combine sums the experts' weighted outputs.
TEST(Ops, AddWeightedRoundsTheProductThenTheSum) {
  std::mt19937 rng(8);
  const int64_t n = 45;  // a vector body and a tail in every clone
  const std::vector<float> x = testing::random_vector(rng, n), y0 = testing::random_vector(rng, n);
  const float w = 0.3712f;
  for (Precision p : {Precision{}, Precision{ComputeDType::kBF16}}) {
    std::vector<float> y(y0);
    add_weighted(y.data(), x.data(), w, n, p);
    for (int64_t i = 0; i < n; ++i) {
      const float want = p.bf16() ? round_bf16(y0[i] + round_bf16(x[i] * w)) : y0[i] + x[i] * w;
      ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(want)) << i;
    }
  }
}

TEST(Ops, ExpF32IsWithinAnUlpOfTheExactValue) {
  // Against exp in double, rounded: at most 1.01 ulp over a grid of bit patterns covering
  // [-110, 90] (every 40009th float), exactly 0 where the true value rounds to 0, inf past the
  // largest float, and the special values.
  double worst = 0;
  int64_t checked = 0;
  for (uint64_t b = 0; b <= 0xffffffffu; b += 40009) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(b));
    if (!(x > -110.0f && x < 90.0f)) continue;
    ++checked;
    const double exact = std::exp(static_cast<double>(x));
    const float rounded = static_cast<float>(exact), got = exp_f32(x);
    if (rounded == 0.0f || std::isinf(rounded)) {
      ASSERT_EQ(got, rounded) << x;
      continue;
    }
    const double ulp = std::max(static_cast<double>(std::nextafter(rounded, INFINITY) - rounded), 0x1p-149);
    worst = std::max(worst, std::fabs(got - exact) / ulp);
  }
  EXPECT_GT(checked, 50000);
  EXPECT_LE(worst, 1.01);
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-INFINITY), 0.0f);
  EXPECT_EQ(exp_f32(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(exp_f32(std::nanf(""))));
  EXPECT_GT(exp_f32(-100.0f), 0.0f);  // subnormal, not flushed
}

TEST(Ops, SiluTimesEqualsTheElementwiseFormula) {
  // The vectorised passes give the bits of round(round(silu(g)) * u) element by element, in f32
  // and bf16, over a range wide enough for exp to overflow and underflow.
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> dist(-100.0f, 100.0f);
  const int64_t n = 1000;
  std::vector<float> g(n), u(n), out(n);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = i % 3 == 0 ? dist(rng) : dist(rng) / 30.0f;
    u[i] = dist(rng) / 10.0f;
  }
  for (Precision p : {Precision{ComputeDType::kF32}, Precision{ComputeDType::kBF16}}) {
    silu_times(g.data(), u.data(), n, out.data(), p);
    for (int64_t i = 0; i < n; ++i) {
      const float want = p.round(p.round(silu(g[i])) * u[i]);
      ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0) << i << ": " << out[i] << " vs " << want;
    }
  }
}

TEST(Ops, RopeRotatesHalvesAndPreservesNorm) {
  const int64_t hd = 8;
  float inv_freq[4];
  for (int j = 0; j < 4; ++j) inv_freq[j] = 1.0f / std::pow(10000.0f, 2.0f * j / hd);
  float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float orig[8];
  std::copy(v, v + 8, orig);
  float table[8];
  rope_cos_sin(3, inv_freq, hd, table, Precision{});
  rope_inplace(v, hd, table, Precision{});
  double n0 = 0, n1 = 0;
  for (int i = 0; i < 8; ++i) {
    n0 += orig[i] * orig[i];
    n1 += v[i] * v[i];
  }
  EXPECT_NEAR(n0, n1, 1e-4);
  // Pair (0, 4) rotated by angle 3 * inv_freq[0] = 3 rad.
  EXPECT_NEAR(v[0], 1 * std::cos(3.0) - 5 * std::sin(3.0), 1e-5);
  EXPECT_NEAR(v[4], 5 * std::cos(3.0) + 1 * std::sin(3.0), 1e-5);
  float w[8];
  std::copy(orig, orig + 8, w);
  rope_cos_sin(0, inv_freq, hd, table, Precision{});
  rope_inplace(w, hd, table, Precision{});  // position 0 is the identity
  for (int i = 0; i < 8; ++i) EXPECT_EQ(w[i], orig[i]);
}

}  // namespace
}  // namespace moepp
