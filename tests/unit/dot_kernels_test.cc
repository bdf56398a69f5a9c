// The row kernels behind matmul: every compiled instruction set against the scalar reference,
// bit for bit, on odd sizes, sub-ranges of rows, strided and misaligned buffers, all weight
// formats; the scalar reference itself against a double-precision dot product (for q8/q4: of
// the dequantised weights with the input as quantised per group of 32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "ops/dot_kernels.h"
#include "ops/elementwise.h"
#include "tensor/quantize.h"
#include "test_util.h"

namespace moepp {
namespace {

std::vector<Weight> weights_in_every_format(std::mt19937& rng, int64_t N, int64_t K) {
  const Weight f32 = testing::random_weight(rng, N, K, 0.7f, DType::kF32);
  const Weight bf16 = testing::random_weight(rng, N, K, 0.7f, DType::kBF16);
  std::vector<Weight> out{f32, bf16, interleave_rows(f32), interleave_rows(bf16)};
  for (const Weight* w : {&out[2], &out[3]}) {  // the layout changes addresses, never values
    EXPECT_TRUE(w->interleaved);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(w->at(n, k), (w == &out[2] ? f32 : bf16).at(n, k));
  }
  for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
    auto qw = quantize_weight(f32, q);
    EXPECT_TRUE(qw.ok());
    out.push_back(*qw);
    out.push_back(interleave_rows(*qw));
    EXPECT_TRUE(out.back().interleaved);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(out.back().at(n, k), qw->at(n, k));
  }
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(DotKernels, WeightRowAsF32EqualsEachElementInEveryFormat) {
  std::mt19937 rng(30);
  for (const Weight& w : weights_in_every_format(rng, 11, 37)) {
    std::vector<float> row(37);
    for (int64_t r : {0, 5, 10}) {
      w.row_to_f32(r, row.data());
      for (int64_t c = 0; c < 37; ++c)
        ASSERT_EQ(bits(row[c]), bits(w.at(r, c))) << weight_format_name(w) << " row " << r << " col " << c;
    }
  }
}

TEST(DotKernels, ScalarReferenceIsADotProduct) {
  std::mt19937 rng(31);
  for (int64_t K : {1, 7, 8, 33, 200}) {
    for (const Weight& w : weights_in_every_format(rng, 3, K)) {
      const std::vector<float> x = testing::random_vector(rng, K);
      float y[3];
      kernels::scalar_kernels().rows(x.data(), 1, K, w, 0, 3, y, 3);
      // Quantised weights multiply the input as quantised per group of 32 (x_int * sx).
      kernels::QuantizedRows xq;
      kernels::quantize_all_rows(kernels::scalar_kernels(), x.data(), 1, K, K, &xq);
      auto input = [&](int64_t k) -> double {
        if (w.quant == WeightQuant::kNone) return x[k];
        const float sx = xq.scale[k / 32];
        EXPECT_LE(std::fabs(xq.q[k] * sx - x[k]), 0.5f * sx * 1.0001f);  // rounded to the nearest step
        return static_cast<double>(xq.q[k]) * sx;
      };
      for (int64_t n = 0; n < 3; ++n) {
        double s = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          s += input(k) * w.at(n, k);
          mag += std::fabs(input(k) * w.at(n, k));
        }
        EXPECT_NEAR(y[n], s, 1e-6 * (1 + mag)) << weight_format_name(w) << " K " << K;
        EXPECT_EQ(kernels::weight_element(w, n, K - 1), w.at(n, K - 1));
      }
    }
  }
}

// Every compiled set's rows [n0, n1) against the scalar reference's, bit for bit.
::testing::AssertionResult every_set_equals_the_scalar_reference(const float* x, int64_t M, int64_t ldx,
                                                                 const Weight& w, int64_t n0, int64_t n1, int64_t ldy,
                                                                 const char* note) {
  std::vector<float> want(static_cast<size_t>(M * ldy), -1.0f);
  kernels::scalar_kernels().rows(x, M, ldx, w, n0, n1, want.data(), ldy);
  for (const auto* set : kernels::available_kernels()) {
    std::vector<float> got(static_cast<size_t>(M * ldy), -1.0f);
    set->rows(x, M, ldx, w, n0, n1, got.data(), ldy);
    for (int64_t i = 0; i < M * ldy; ++i)
      if (bits(got[i]) != bits(want[i]))
        return ::testing::AssertionFailure()
               << set->isa << " " << weight_format_name(w) << (w.interleaved ? " interleaved" : "") << " K "
               << w.cols << " M " << M << " rows " << n0 << ".." << n1 << note << " at " << i << ": " << got[i]
               << " vs " << want[i];
  }
  return ::testing::AssertionSuccess();
}

TEST(DotKernels, EverySimdSetEqualsTheScalarReferenceBitForBit) {
  std::mt19937 rng(32);
  const auto sets = kernels::available_kernels();
  std::printf("kernel sets on this CPU:");
  for (const auto* s : sets) std::printf(" %s", s->isa);
  std::printf(" (active: %s)\n", kernels::active_kernels().isa);
  for (int64_t K : {1, 5, 8, 16, 29, 64, 100, 257}) {
    for (int64_t M : {1, 2, 3, 4, 5, 9}) {
      const int64_t N = 13, ldx = K + 3, ldy = N + 2;
      for (const Weight& w : weights_in_every_format(rng, N, K)) {
        // x starts one float past an aligned buffer, rows ldx apart: misaligned, strided input.
        std::vector<float> xbuf = testing::random_vector(rng, static_cast<size_t>(M * ldx + 1));
        const float* x = xbuf.data() + 1;
        for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, N}, {3, 10}, {12, 13}})
          ASSERT_TRUE(every_set_equals_the_scalar_reference(x, M, ldx, w, n0, n1, ldy, ""));
      }
    }
  }
}

TEST(DotKernels, WholeRowBlocksAndWideTilesEqualTheScalarReference) {
  // Several row blocks, ranges that start and end inside a block, and batches past one tile
  // of tokens (the AVX-512 set's 8-row f32/bf16 blocks and 6-token tiles, its 16-row q8/q4
  // blocks and 8-token tiles; the AVX2 set's 4 x 3 tiles and 2-token q8/q4 tiles),
  // with f32 inputs and with inputs that are bf16 values, as under --dtype bf16 (the AVX-512 set
  // then takes vdpbf16ps for bf16 weights where the CPU has it). K = 300 and 520 take the AVX2
  // set's bf16 batches over more than one chunk of 256 columns, the last one partial or a single
  // partial step. M = 17 takes the AVX2 set's bf16 rows converted to f32 up to K = 520, whole
  // 8-row blocks at a time (K = 40: a last step of 16 columns with 8 past K), the rows outside
  // them one by one; at K = 900 (rows too long for the converted tiles to stay in L1) the
  // batches in chunks, as M = 2-13 at every K (groups of 1 and 2 tokens take 8 and 4 rows a
  // tile, 3 tokens alone 3, 3 and 2).
  std::mt19937 rng(35);
  for (int64_t K : {3, 40, 96, 131, 300, 520, 900}) {
    for (int64_t M : {1, 2, 3, 6, 7, 13, 17}) {
      const int64_t N = 91, ldx = K + 1, ldy = N + 5;
      for (const Weight& w : weights_in_every_format(rng, N, K)) {
        for (bool bf16_inputs : {false, true}) {
          std::vector<float> xbuf = testing::random_vector(rng, static_cast<size_t>(M * ldx + 3));
          if (bf16_inputs)
            for (float& v : xbuf) v = round_bf16(v);
          const float* x = xbuf.data() + 3;
          // One token's blocks as the streams in use (blocks_as_streams; the next test runs each
          // count): 0..N has 11 whole 8-row blocks (with four streams, four of two and three left
          // over), 3..N - 4 has 9 from row 8 (one left over), 0..40 has 5; of 16 rows (q8/q4) 5, 4
          // from row 16 and 2.
          for (auto [n0, n1] :
               {std::pair<int64_t, int64_t>{0, N}, {8, 24}, {5, 37}, {16, 17}, {3, N - 4}, {0, 40}})
            ASSERT_TRUE(every_set_equals_the_scalar_reference(x, M, ldx, w, n0, n1, ldy,
                                                              bf16_inputs ? " bf16 inputs" : ""));
        }
      }
    }
  }
}

// The CPU's vendor and family as /proc/cpuinfo states them (read apart from the kernels' cpuid),
// or {"", -1} where it cannot be read.
std::pair<std::string, int> cpuinfo_vendor_and_family() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, vendor;
  int family = -1;
  while (std::getline(in, line) && (vendor.empty() || family < 0)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string value = line.substr(std::min(line.size(), colon + 2));
    if (line.rfind("vendor_id", 0) == 0) vendor = value;
    if (line.rfind("cpu family", 0) == 0) family = std::atoi(value.c_str());
  }
  return {vendor, family};
}

TEST(DotKernels, OneTokenStreamDefaultsFollowTheCpu) {
  // AMD family 25 (Zen 4) walks one stream in every kernel, family 26 (Zen 5) four for bf16 and two
  // for q8/q4, every other CPU four (docs/performance.md, "Streams per thread by CPU").
  using kernels::StreamKernel;
  const auto [vendor, family] = cpuinfo_vendor_and_family();
  if (vendor.empty() || family < 0) GTEST_SKIP() << "no /proc/cpuinfo vendor and family";
  const bool amd = vendor == "AuthenticAMD";
  const int bf16 = amd && family == 25 ? 1 : 4, quantized = amd && family == 25 ? 1 : amd && family == 26 ? 2 : 4;
  EXPECT_EQ(kernels::default_one_token_streams(StreamKernel::kBf16), bf16) << vendor << " family " << family;
  EXPECT_EQ(kernels::default_one_token_streams(StreamKernel::kQ8), quantized) << vendor << " family " << family;
  EXPECT_EQ(kernels::default_one_token_streams(StreamKernel::kQ4), quantized) << vendor << " family " << family;
}

TEST(DotKernels, OneTokenProductsAreTheSameBitsForEveryStreamCount) {
  // The one-token kernels walk a thread's whole row blocks as 1, 2 or 4 streams (the count in
  // use depends on the CPU): each count against the scalar reference, on ranges whose whole blocks
  // split evenly or leave blocks over (of 8 rows 11, 9, 5, 2, 1 and 2 whole blocks; of 16, q8/q4's,
  // 5, 4, 2, 0, 0 and 1), bf16-valued inputs too.
  using kernels::StreamKernel;
  const StreamKernel every_kernel[] = {StreamKernel::kBf16, StreamKernel::kQ8, StreamKernel::kQ4};
  const kernels::KeepOneTokenStreams keep;
  const int kept = kernels::one_token_streams(StreamKernel::kQ8), forced = kernels::forced_one_token_streams();
  EXPECT_TRUE(kept == 1 || kept == 2 || kept == 4) << kept;
  EXPECT_FALSE(kernels::set_one_token_streams(3));
  EXPECT_FALSE(kernels::set_one_token_streams(-1));
  EXPECT_EQ(kernels::one_token_streams(StreamKernel::kQ8), kept);
  EXPECT_EQ(kernels::forced_one_token_streams(), forced);
  // 0 puts back each kernel's CPU default.
  ASSERT_TRUE(kernels::set_one_token_streams(0));
  EXPECT_EQ(kernels::forced_one_token_streams(), 0);
  for (StreamKernel k : every_kernel) EXPECT_EQ(kernels::one_token_streams(k), kernels::default_one_token_streams(k));
  std::mt19937 rng(38);
  const int64_t N = 91, K = 200;
  const std::vector<Weight> weights = weights_in_every_format(rng, N, K);
  for (int streams : {1, 2, 4}) {
    ASSERT_TRUE(kernels::set_one_token_streams(streams));
    for (StreamKernel k : every_kernel) EXPECT_EQ(kernels::one_token_streams(k), streams);
    for (const Weight& w : weights)
      for (bool bf16_input : {false, true}) {
        std::vector<float> x = testing::random_vector(rng, K);
        if (bf16_input)
          for (float& v : x) v = round_bf16(v);
        const std::string note = " streams " + std::to_string(streams) + (bf16_input ? " bf16 input" : "");
        for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, N}, {3, N - 4}, {0, 40}, {8, 24}, {5, 16}, {16, 32}})
          EXPECT_TRUE(every_set_equals_the_scalar_reference(x.data(), 1, K, w, n0, n1, N, note.c_str()));
      }
  }
}

TEST(DotKernels, BatchesLongerThanAnInputBlockEqualTheScalarReference) {
  // Batches whose inputs outgrow L2 (401 tokens of 1030 f32 columns, 1.66 MB): the AVX-512 sets
  // multiply them in blocks of 768 KiB of tokens (186, 186, 29), every block by all of the task's
  // panels; bf16 inputs on vdpbf16ps (the avx512bf16 set, where the CPU has it) in even blocks of
  // at most 64 KiB of paired inputs past 128 KiB (31 tokens of 2080 bytes: 401 as 13 blocks, 47 as
  // one). 47 and 48 tokens sit either side of the avx512 set's switch from vdpbf16ps to f32
  // panels for bf16-valued inputs.
  std::mt19937 rng(39);
  const int64_t K = 1030, N = 21, ldx = K + 2, ldy = N;
  for (int64_t M : {47, 48, 401}) {
    std::vector<float> x = testing::random_vector(rng, static_cast<size_t>(M * ldx));
    for (bool bf16_inputs : {false, true}) {
      if (bf16_inputs)
        for (float& v : x) v = round_bf16(v);
      for (DType dtype : {DType::kF32, DType::kBF16}) {
        const Weight w = interleave_rows(testing::random_weight(rng, N, K, 0.7f, dtype));
        for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, N}, {8, 16}})
          ASSERT_TRUE(every_set_equals_the_scalar_reference(x.data(), M, ldx, w, n0, n1, ldy,
                                                            bf16_inputs ? " bf16 inputs" : ""));
      }
    }
  }
}

TEST(DotKernels, QuantizedRowsOfABatchEqualTheScalarReference) {
  // The integer path on inputs quantised once, from a row m0 > 0 of them (as the experts call it).
  std::mt19937 rng(36);
  const int64_t N = 40, K = 100, M = 9, m0 = 2;
  const std::vector<float> x = testing::random_vector(rng, static_cast<size_t>((M + m0) * K));
  kernels::QuantizedRows a;
  kernels::quantize_activations(x.data(), M + m0, K, K, &a);
  for (const Weight& w : weights_in_every_format(rng, N, K)) {
    if (w.quant == WeightQuant::kNone) continue;
    std::vector<float> want(static_cast<size_t>(M * N)), got(want.size());
    kernels::scalar_kernels().quantized_rows(a, m0, M, w, 0, N, want.data(), N);
    for (const auto* set : kernels::available_kernels()) {
      set->quantized_rows(a, m0, M, w, 0, N, got.data(), N);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << " " << weight_format_name(w) << " at " << i;
    }
  }
}

TEST(DotKernels, QuantizedExtremesOfEverySetEqualTheScalarReference) {
  // The largest integer sums the path can meet: weights at +-127 (q8) and +-7 (q4), inputs at
  // +-127, with the same signs (every product positive) and opposite ones (negative), over whole
  // groups and a short last one. Every set against the twin, bit for bit, and the twin against the
  // exact sum (the values are exact; only the f32 steps round).
  for (int64_t K : {96, 100}) {
    const int64_t N = 35;
    Weight w = make_owned_weight(DType::kF32, N, K);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) const_cast<float*>(w.f32())[n * K + k] = n % 2 ? -1.0f : 1.0f;
    std::vector<float> x(static_cast<size_t>(2 * K), 1.0f);
    std::fill(x.begin() + K, x.end(), -1.0f);
    kernels::QuantizedRows a;
    kernels::quantize_activations(x.data(), 2, K, K, &a);
    for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
      const Weight qw = interleave_rows(quantize_weight(w, q).value());
      ASSERT_EQ(std::abs(kernels::weight_integer(qw, 1, 0)), q == WeightQuant::kQ8 ? 127 : 7);
      const int64_t ldy = N + 3;  // outputs a kernel leaves unwritten stay NaN and fail
      std::vector<float> want(static_cast<size_t>(2 * ldy)), got(want.size());
      kernels::scalar_kernels().quantized_rows(a, 0, 2, qw, 0, N, want.data(), ldy);
      for (int64_t m = 0; m < 2; ++m)
        for (int64_t n = 0; n < N; ++n)
          EXPECT_NEAR(want[m * ldy + n], (m == n % 2 ? 1.0 : -1.0) * K, 1e-4 * K) << quant_name(q) << " " << m << " " << n;
      for (const auto* set : kernels::available_kernels()) {
        for (int64_t M : {1, 2}) {
          std::fill(got.begin(), got.end(), std::nanf(""));
          set->quantized_rows(a, 0, M, qw, 0, N, got.data(), ldy);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n)
              ASSERT_EQ(bits(got[m * ldy + n]), bits(want[m * ldy + n]))
                  << set->isa << " " << quant_name(q) << " K " << K << " M " << M << " at " << m << ", " << n;
        }
      }
    }
  }
}

TEST(DotKernels, QuantizedInputsOfEverySetEqualTheScalarReference) {
  // Odd widths (a short last group), rows ldx apart from a misaligned start, an all-zero row and
  // group, values past the int8 range once scaled (a group's one large value), buffers reused.
  std::mt19937 rng(38);
  for (int64_t K : {1, 5, 31, 32, 33, 100, 1024}) {
    const int64_t M = 5, ldx = K + 3;
    std::vector<float> buffer = testing::random_vector(rng, static_cast<size_t>(M * ldx + 1));
    float* x = buffer.data() + 1;
    std::fill(x + ldx, x + ldx + K, 0.0f);                    // row 1: zeros
    std::fill(x, x + std::min<int64_t>(K, 32), 0.0f);         // row 0: a zero first group
    x[2 * ldx + K / 2] = 1e4f;                                 // row 2: one large value
    x[3 * ldx] = -x[3 * ldx] * 1e-30f;                         // row 3: a tiny value
    kernels::QuantizedRows want;
    kernels::quantize_all_rows(kernels::scalar_kernels(), x, M, ldx, K, &want);
    for (const auto* set : kernels::available_kernels()) {
      kernels::QuantizedRows got;
      got.q.assign(7 * 32 * M * 64, 99);  // stale contents from a larger call must not leak
      got.group_sum.assign(7 * M * 64, 99);
      for (int pass = 0; pass < 2; ++pass) {
        kernels::quantize_all_rows(*set, x, M, ldx, K, &got);
        ASSERT_EQ(got.groups, want.groups) << set->isa;
        ASSERT_EQ(got.q.size(), want.q.size()) << set->isa << " K " << K;
        EXPECT_EQ(got.q, want.q) << set->isa << " K " << K;
        EXPECT_EQ(got.group_sum, want.group_sum) << set->isa << " K " << K;
        for (size_t i = 0; i < want.scale.size(); ++i)
          ASSERT_EQ(bits(got.scale[i]), bits(want.scale[i])) << set->isa << " K " << K << " group " << i;
      }
    }
    int nonzero = 0;  // the reference's own sanity: rows 2-4 hold values
    for (int8_t q : want.q) nonzero += q != 0;
    EXPECT_GT(nonzero, 0);
  }
}

TEST(DotKernels, PairedInputsOfABatchEqualTheScalarReference) {
  // bf16 inputs paired once for vdpbf16ps, from a row m0 > 0 of them (as matmul and the experts
  // call it), against bf16 weights; f32 inputs are refused. Sets without the path say so. 70
  // tokens of 1030 columns (145 KiB paired) go in blocks of tokens (24, 24, 22) on vdpbf16ps.
  std::mt19937 rng(37);
  int checked = 0;
  for (int64_t K : {5, 16, 40, 131, 1030}) {
    const int64_t N = 43, M = K > 1000 ? 70 : 13, m0 = 3, ldx = K + 2;
    std::vector<float> x = testing::random_vector(rng, static_cast<size_t>((M + m0) * ldx));
    std::vector<uint32_t> f32_pairs(static_cast<size_t>((M + m0) * kernels::paired_row_words(K)));
    for (const auto* set : kernels::available_kernels()) {
      if (set->pair_rows != nullptr) {
        EXPECT_FALSE(set->pair_rows(x.data(), M + m0, ldx, K, f32_pairs.data())) << set->isa;
      }
    }
    for (float& v : x) v = round_bf16(v);
    for (const Weight& w : weights_in_every_format(rng, N, K)) {
      if (w.quant != WeightQuant::kNone || w.dtype != DType::kBF16) continue;
      for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, N}, {8, 24}, {5, 37}}) {
        const int64_t width = n1 - n0;
        std::vector<float> want(static_cast<size_t>(M * width), -1.0f), got(want.size(), -1.0f);
        kernels::scalar_kernels().rows(x.data() + m0 * ldx, M, ldx, w, n0, n1, want.data(), width);
        for (const auto* set : kernels::available_kernels()) {
          kernels::PairedRows pairs;
          pairs.pairs.resize(static_cast<size_t>((M + m0) * kernels::paired_row_words(K)));
          if (set->pair_rows == nullptr || !set->pair_rows(x.data(), M + m0, ldx, K, pairs.pairs.data())) continue;
          pairs.K = K;
          ++checked;
          set->paired_rows(pairs, m0, M, w, n0, n1, got.data(), width);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << (w.interleaved ? " interleaved" : "") << " K " << K
                                                   << " rows " << n0 << ".." << n1 << " at " << i;
        }
      }
    }
  }
  std::printf("paired-input products checked: %d (none where no set has the path)\n", checked);
}

TEST(DotKernels, BatchRowsEqualTheRowAlone) {
  // The server batches tokens and speculative decoding verifies drafts in one batch: each
  // token must get the bits it would get alone, whatever path (GEMV, tiles, packed) runs.
  std::mt19937 rng(33);
  const int64_t K = 96, N = 40, M = 11;
  for (const Weight& w : weights_in_every_format(rng, N, K)) {
    const std::vector<float> x = testing::random_vector(rng, M * K);
    std::vector<float> batch(M * N), alone(N);
    kernels::active_kernels().rows(x.data(), M, K, w, 0, N, batch.data(), N);
    for (int64_t m = 0; m < M; ++m) {
      kernels::active_kernels().rows(x.data() + m * K, 1, K, w, 0, N, alone.data(), N);
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(bits(batch[m * N + n]), bits(alone[n])) << weight_format_name(w);
    }
  }
}

TEST(DotKernels, AttentionDotAndAxpyEqualTheScalarReference) {
  std::mt19937 rng(34);
  for (int64_t n : {1, 7, 8, 64, 100, 128}) {
    std::vector<float> buf = testing::random_vector(rng, static_cast<size_t>(2 * n + 1));
    const float* a = buf.data() + 1;  // misaligned
    const float* b = buf.data() + 1 + n;
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(a[i]) * b[i];
    const float want = kernels::scalar_kernels().dot(a, b, n);
    EXPECT_NEAR(want, exact, 1e-5 * (1 + std::fabs(exact)));
    std::vector<float> y_want = testing::random_vector(rng, static_cast<size_t>(n));
    std::vector<float> y0 = y_want;
    kernels::scalar_kernels().axpy(0.37f, a, y_want.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(y_want[i]), bits(y0[i] + 0.37f * a[i]));
    for (const auto* set : kernels::available_kernels()) {
      EXPECT_EQ(bits(set->dot(a, b, n)), bits(want)) << set->isa << " n " << n;
      std::vector<float> y = y0;
      set->axpy(0.37f, a, y.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), bits(y_want[i])) << set->isa << " n " << n;
    }
  }
}

TEST(DotKernels, ExpSumOfEverySetEqualsTheScalarReference) {
  // exp(x - shift) and its lane-ordered double sum, bit for bit, on lengths around the vector
  // widths, misaligned and in place, with values that overflow, underflow into subnormals, are
  // infinite or NaN; the scalar sum against the exact sum of its own outputs.
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> wide(-120.0f, 100.0f);
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 33, 250}) {
    std::vector<float> buf(static_cast<size_t>(n + 1));
    for (float& v : buf) v = wide(rng) / (rng() % 2 == 0 ? 1.0f : 40.0f);
    if (n > 4) {
      buf[1] = -INFINITY;
      buf[2] = INFINITY;
      buf[3] = -87.5f;  // a subnormal result
      buf[4] = std::nanf("");
    }
    const float* x = buf.data() + 1;  // misaligned
    const float shift = n % 2 == 0 ? 0.0f : 1.5f;
    std::vector<float> want(static_cast<size_t>(n));
    const double want_sum = kernels::scalar_kernels().exp_sum(x, shift, want.data(), n);
    double exact = 0;
    for (float v : want) exact += v;
    if (std::isfinite(exact)) {
      EXPECT_NEAR(want_sum, exact, 1e-12 * std::fabs(exact)) << n;
    }
    for (const auto* set : kernels::available_kernels()) {
      std::vector<float> got(static_cast<size_t>(n), -1.0f);
      const double sum = set->exp_sum(x, shift, got.data(), n);
      EXPECT_EQ(std::memcmp(&sum, &want_sum, sizeof sum), 0) << set->isa << " n " << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << " n " << n << " at " << i;
      std::vector<float> inplace(x, x + n);
      set->exp_sum(inplace.data(), shift, inplace.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(inplace[i]), bits(want[i])) << set->isa << " in place, n " << n;
    }
  }
}

// The experts' SiLU per set against silu() itself (exp_f32 and a division), lanes and tails,
// infinities, a NaN, zeros of both signs, misaligned, and in place: the same bits.
TEST(DotKernels, SiluEqualsTheScalarFormula) {
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f);
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 32, 33, 250}) {
    std::vector<float> buf(static_cast<size_t>(n + 1));
    for (float& v : buf) v = wide(rng) / (rng() % 2 == 0 ? 1.0f : 30.0f);
    if (n > 5) {
      buf[1] = -INFINITY;
      buf[2] = INFINITY;
      buf[3] = std::nanf("");
      buf[4] = -0.0f;
      buf[5] = 0.0f;
    }
    const float* x = buf.data() + 1;  // misaligned
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[i] = silu(x[i]);
    for (const auto* set : kernels::available_kernels()) {
      ASSERT_NE(set->silu, nullptr) << set->isa;
      std::vector<float> got(static_cast<size_t>(n), -1.0f);
      set->silu(x, got.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << " n " << n << " at " << i;
      std::vector<float> inplace(x, x + n);
      set->silu(inplace.data(), inplace.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(inplace[i]), bits(want[i])) << set->isa << " in place, n " << n;
    }
  }
}

// q8 KV cache rows widened to f32 per set against the definition (float(q) * its group's scale),
// odd row widths (short last groups, tails under 8 and 16), every int8 value, special scales,
// misaligned rows, and nothing written past the output.
TEST(DotKernels, DequantizedKvRowsEqualTheScalarDefinition) {
  std::mt19937 rng(43);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 80, 100, 128}) {
    const int64_t rows = 5, groups = (n + 31) / 32;
    std::vector<int8_t> qbuf(static_cast<size_t>(rows * n + 1));
    for (size_t i = 0; i < qbuf.size(); ++i) qbuf[i] = static_cast<int8_t>(static_cast<int>(i * 37 + rng()) % 256 - 128);
    const int8_t* q = qbuf.data() + 1;  // misaligned
    std::vector<float> scales(static_cast<size_t>(rows * groups));
    for (float& v : scales) v = std::ldexp(static_cast<float>(rng() % 1000 + 1), -static_cast<int>(rng() % 20));
    scales[0] = 0.0f;
    if (scales.size() > 2) scales[2] = INFINITY;
    std::vector<float> want(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i) want[r * n + i] = static_cast<float>(q[r * n + i]) * scales[r * groups + i / 32];
    for (const auto* set : kernels::available_kernels()) {
      ASSERT_NE(set->dequantize_kv_rows, nullptr) << set->isa;
      std::vector<float> got(static_cast<size_t>(rows * n + 16), -7.0f);
      set->dequantize_kv_rows(q, scales.data(), rows, n, got.data());
      for (int64_t i = 0; i < rows * n; ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << " n " << n << " at " << i;
      for (int64_t i = rows * n; i < rows * n + 16; ++i) ASSERT_EQ(got[i], -7.0f) << set->isa << " wrote past the rows, n " << n;
    }
  }
}

// The sets' q8 attention kernels (where a set has them) against its f32 kernels on the widened
// rows: scores and value sums bit for bit, widths taken and refused, 1-9 queries, key counts
// around blocks of 8 and the stream split, special scales.
TEST(DotKernels, Q8AttentionRowsEqualTheF32KernelsOnTheirValues) {
  std::mt19937 rng(47);
  int checked = 0;
  for (int64_t n : {16, 32, 48, 64, 80, 128, 256, 264}) {
    const int64_t groups = (n + 31) / 32;
    for (int64_t count : {1, 7, 8, 9, 16, 17, 63, 100}) {
      std::vector<int8_t> rows(static_cast<size_t>(count * n));
      for (auto& v : rows) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      std::vector<float> scales(static_cast<size_t>(count * groups));
      for (float& v : scales) v = std::ldexp(static_cast<float>(rng() % 1000 + 1), -15);
      scales[0] = 0.0f;
      std::vector<float> widened(rows.size());
      kernels::scalar_kernels().dequantize_kv_rows(rows.data(), scales.data(), count, n, widened.data());
      for (int64_t A : {1, 2, 3, 4, 9}) {
        std::vector<float> q(static_cast<size_t>(A * n)), c(static_cast<size_t>(A * count));
        for (float& v : q) v = std::uniform_real_distribution<float>(-2, 2)(rng);
        for (float& v : c) v = std::uniform_real_distribution<float>(0, 1)(rng);
        for (const auto* set : kernels::available_kernels()) {
          if (set->dot_rows_block_q8 == nullptr) continue;
          ASSERT_NE(set->axpy_rows_block_q8, nullptr) << set->isa;
          std::vector<float> want(static_cast<size_t>(A * count)), got(want.size(), -1.0f);
          set->dot_rows_block(q.data(), A, n, widened.data(), n, count, n, want.data(), count);
          const bool dot_taken = set->dot_rows_block_q8(q.data(), A, n, rows.data(), scales.data(), count, n, got.data(), count);
          if (dot_taken) {
            ++checked;
            for (size_t i = 0; i < got.size(); ++i)
              ASSERT_EQ(bits(got[i]), bits(want[i])) << set->isa << " scores n " << n << " count " << count << " A " << A << " at " << i;
          }
          std::vector<float> y_want(static_cast<size_t>(A * n)), y_got;
          for (float& v : y_want) v = std::uniform_real_distribution<float>(-1, 1)(rng);
          y_got = y_want;
          set->axpy_rows_block(c.data(), A, count, widened.data(), n, count, y_want.data(), n, n);
          if (set->axpy_rows_block_q8(c.data(), A, count, rows.data(), scales.data(), count, y_got.data(), n, n)) {
            ++checked;
            for (size_t i = 0; i < y_got.size(); ++i)
              ASSERT_EQ(bits(y_got[i]), bits(y_want[i])) << set->isa << " values n " << n << " count " << count << " A " << A << " at " << i;
          } else {
            ASSERT_NE(n % 64, 0) << set->isa << " refused a width of whole 64s";
          }
        }
      }
    }
  }
  if (kernels::available_kernels().back()->dot_rows_block_q8 != nullptr) {
    EXPECT_GT(checked, 0);
  }
}

TEST(DotKernels, AttentionRowsEqualOneDotOrAxpyPerRow) {
  // dot_rows / axpy_rows over keys and values `stride` floats apart: per row, the bits of dot and
  // axpy, for every set (the AVX-512 set takes 8 keys at a time, 16 outputs per register).
  std::mt19937 rng(37);
  for (int64_t n : {1, 7, 8, 64, 100, 128}) {
    for (int64_t count : {1, 7, 8, 9, 19}) {
      const int64_t stride = n + 5;
      const std::vector<float> rows = testing::random_vector(rng, static_cast<size_t>(count * stride));
      const std::vector<float> a = testing::random_vector(rng, static_cast<size_t>(n));
      const std::vector<float> c = testing::random_vector(rng, static_cast<size_t>(count));
      const std::vector<float> y0 = testing::random_vector(rng, static_cast<size_t>(n));
      std::vector<float> dots_want(count), y_want = y0;
      for (int64_t j = 0; j < count; ++j) {
        dots_want[j] = kernels::scalar_kernels().dot(a.data(), rows.data() + j * stride, n);
        kernels::scalar_kernels().axpy(c[j], rows.data() + j * stride, y_want.data(), n);
      }
      for (const auto* set : kernels::available_kernels()) {
        std::vector<float> dots(count, -1.0f), y = y0;
        set->dot_rows(a.data(), rows.data(), stride, count, n, dots.data());
        set->axpy_rows(c.data(), rows.data(), stride, count, y.data(), n);
        for (int64_t j = 0; j < count; ++j)
          ASSERT_EQ(bits(dots[j]), bits(dots_want[j])) << set->isa << " dot_rows n " << n << " count " << count << " row " << j;
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(bits(y[i]), bits(y_want[i])) << set->isa << " axpy_rows n " << n << " count " << count << " at " << i;
      }
    }
  }
}

// dot_rows_block / axpy_rows_block over blocks of 1..9 queries (strided, as heads in a token's
// row): per query, the bits of the scalar dot and axpy, for every set. With bf16_cache, the rows
// are bf16 values and the sets' bf16-row kernels (a bf16 KV cache) must give those bits too,
// reading the rows from a misaligned buffer. With bf16_queries, queries and probabilities are bf16
// values as in a bf16 forward, which the AVX-512 sets take on vdpbf16ps.
void check_row_blocks(uint32_t seed, bool bf16_cache, bool bf16_queries = false) {
  std::mt19937 rng(seed);
  // 40: bf16 keys 16 dims a step, then 8; 32, 64, 128, 256: paired queries (64 and 128 with the
  // chunk count fixed, the others not); 96: values paired 64 then 32 wide
  for (int64_t n : {7, 32, 40, 64, 96, 100, 128, 256}) {
    // 16, 19, 45: one query's keys as two runs (none, 3 and 5 keys left over); 45: past the
    // kernels' prefetch distance
    // (and for paired values: no pair, 4, 8, 9 and 22 pairs, odd counts with a last row alone)
    for (int64_t count : {1, 8, 16, 19, 45}) {
      for (int64_t A : {1, 2, 3, 4, 9}) {
        const int64_t stride = n + 3, ldq = n + 5, ldc = count + 2, ldy = n + 1;
        std::vector<float> rows = testing::random_vector(rng, static_cast<size_t>(count * stride));
        std::vector<uint16_t> rows_bf16(rows.size() + 1);  // from element 1: 2 bytes off alignment
        if (bf16_cache)
          for (size_t i = 0; i < rows.size(); ++i) {
            rows_bf16[i + 1] = f32_to_bf16(rows[i]);
            rows[i] = bf16_to_f32(rows_bf16[i + 1]);
          }
        std::vector<float> q = testing::random_vector(rng, static_cast<size_t>(A * ldq));
        if (bf16_queries)  // as a bf16 forward's queries: the AVX-512 set's vdpbf16ps path
          for (float& v : q) v = round_bf16(v);
        std::vector<float> c = testing::random_vector(rng, static_cast<size_t>(A * ldc));
        if (bf16_queries) {  // and its probabilities: the AVX-512 sets' vdpbf16ps values path
          for (float& v : c) v = round_bf16(v);
          // The ninth query's last probability not a bf16 value: its block is paired past the
          // first check, then falls back to the multiply-and-add path.
          if (A == 9) c[8 * ldc + count - 1] += 1e-4f;
        }
        const std::vector<float> y0 = testing::random_vector(rng, static_cast<size_t>(A * ldy));
        std::vector<float> dots_want(static_cast<size_t>(A * count)), y_want = y0;
        for (int64_t a = 0; a < A; ++a)
          for (int64_t j = 0; j < count; ++j) {
            dots_want[a * count + j] = kernels::scalar_kernels().dot(&q[a * ldq], &rows[j * stride], n);
            kernels::scalar_kernels().axpy(c[a * ldc + j], &rows[j * stride], &y_want[a * ldy], n);
          }
        for (const auto* set : kernels::available_kernels()) {
          std::vector<float> dots(dots_want.size(), -1.0f), y = y0;
          if (bf16_cache) {
            set->dot_rows_block_bf16(q.data(), A, ldq, rows_bf16.data() + 1, stride, count, n, dots.data(), count);
            set->axpy_rows_block_bf16(c.data(), A, ldc, rows_bf16.data() + 1, stride, count, y.data(), ldy, n);
          } else {
            set->dot_rows_block(q.data(), A, ldq, rows.data(), stride, count, n, dots.data(), count);
            set->axpy_rows_block(c.data(), A, ldc, rows.data(), stride, count, y.data(), ldy, n);
          }
          const char* rows_kind = bf16_cache ? " bf16 rows" : " f32 rows";
          for (size_t i = 0; i < dots.size(); ++i)
            ASSERT_EQ(bits(dots[i]), bits(dots_want[i]))
                << set->isa << rows_kind << " n " << n << " count " << count << " A " << A;
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_EQ(bits(y[i]), bits(y_want[i])) << set->isa << rows_kind << " n " << n << " count " << count << " A " << A;
        }
      }
    }
  }
}

TEST(DotKernels, AttentionRowBlocksEqualOneQueryAtATime) { check_row_blocks(47, false); }

TEST(DotKernels, AttentionRowBlocksOnBf16CacheRowsEqualTheF32Kernels) { check_row_blocks(53, true); }

TEST(DotKernels, AttentionRowBlocksOfBf16QueriesOnBf16RowsEqualTheF32Kernels) { check_row_blocks(59, true, true); }

}  // namespace
}  // namespace moepp
