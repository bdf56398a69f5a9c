// Group quantisation: the error bound each format promises, and matmul on quantised weights
// equals matmul on their dequantised values within the input's own quantisation step (odd
// widths, short last groups).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "ops/matmul.h"
#include "tensor/quantize.h"
#include "test_util.h"

namespace moepp {
namespace {

TEST(Quantize, ErrorWithinHalfAStepPerGroup) {
  std::mt19937 rng(21);
  for (int64_t cols : {32, 45, 96, 7}) {
    const Weight w = testing::random_weight(rng, 5, cols, 1.0f);
    for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
      auto qw = quantize_weight(w, q);
      ASSERT_TRUE(qw.ok()) << qw.status().message();
      const float qmax = q == WeightQuant::kQ8 ? 127.0f : 7.0f;
      for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          float amax = 0;  // the group's absmax sets its step
          const int64_t g0 = c / kQuantGroup * kQuantGroup;
          for (int64_t j = g0; j < std::min(cols, g0 + kQuantGroup); ++j) amax = std::max(amax, std::fabs(w.at(r, j)));
          EXPECT_LE(std::fabs(qw->at(r, c) - w.at(r, c)), 0.5f * amax / qmax * 1.0001f + 1e-7f)
              << "cols " << cols << " q" << (q == WeightQuant::kQ8 ? 8 : 4);
        }
      EXPECT_LT(qw->nbytes(), w.nbytes());
    }
  }
}

// Codes and scales exactly as the format defines them, recomputed here one value at a time: s =
// absmax / qmax per group, code = x * (1 / s) rounded half away from zero (lround), clamped;
// exact halves included (a group whose absmax is qmax has s = 1).
TEST(Quantize, CodesAreTheRoundedScaledValues) {
  std::mt19937 rng(20);
  for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
    const float qmax = q == WeightQuant::kQ8 ? 127.0f : 7.0f;
    for (int64_t cols : {7, 32, 45, 96}) {
      Weight w = testing::random_weight(rng, 4, cols, 1.0f);
      float* x = const_cast<float*>(w.f32());
      // Row 0: absmax qmax, so s = 1 and these values are exact halves.
      x[0] = qmax;
      for (int64_t c = 1; c < std::min<int64_t>(cols, kQuantGroup); ++c) x[c] = (c % 2 ? 0.5f : -0.5f) + static_cast<float>(c % 5);
      auto qw = quantize_weight(w, q);
      ASSERT_TRUE(qw.ok()) << qw.status().message();
      for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t g = 0; g * kQuantGroup < cols; ++g) {
          const int64_t c0 = g * kQuantGroup, c1 = std::min(cols, c0 + kQuantGroup);
          float amax = 0;
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
          const float scale = amax / qmax, inv = scale > 0 ? 1.0f / scale : 0.0f;
          ASSERT_EQ(qw->scales[qw->scale_index(r, g)], scale);
          for (int64_t c = c0; c < c1; ++c) {
            const long want = std::clamp<long>(std::lround(static_cast<double>(x[r * cols + c] * inv)), -qmax, qmax);
            const int got = q == WeightQuant::kQ8 ? qw->q8_value(r, c) : qw->q4_nibble(r, c) - 8;
            ASSERT_EQ(got, want) << "q" << (q == WeightQuant::kQ8 ? 8 : 4) << " cols " << cols << " (" << r << ", " << c << ")";
          }
        }
    }
  }
}

// A group so small that its inverse scale overflows (absmax 1e-38: s is subnormal) still gets
// codes of its values' signs, the largest magnitudes at the format's ends.
TEST(Quantize, TinyGroupsKeepTheirSigns) {
  std::mt19937 rng(23);
  Weight w = testing::random_weight(rng, 1, 64, 1.0f);
  float* x = const_cast<float*>(w.f32());
  for (int64_t c = 0; c < kQuantGroup; ++c) x[c] = c % 3 == 0 ? 0.0f : (c % 2 ? 1e-38f : -1e-38f);
  for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
    auto qw = quantize_weight(w, q);
    ASSERT_TRUE(qw.ok()) << qw.status().message();
    for (int64_t c = 0; c < kQuantGroup; ++c) {
      const int code = q == WeightQuant::kQ8 ? qw->q8_value(0, c) : qw->q4_nibble(0, c) - 8;
      const int want = x[c] == 0.0f ? 0 : x[c] > 0 ? (q == WeightQuant::kQ8 ? 127 : 7) : (q == WeightQuant::kQ8 ? -127 : -8);
      ASSERT_EQ(code, want) << "q" << (q == WeightQuant::kQ8 ? 8 : 4) << " column " << c;
    }
  }
}

// The interleaved copy the kernels read (values and scales per group of 16 rows, lane-major)
// holds every element of the row-major original, padding rows and short groups included.
TEST(Quantize, InterleavedCopyKeepsEveryElement) {
  std::mt19937 rng(22);
  for (int64_t rows : {1, 8, 13, 16, 35}) {
    for (int64_t cols : {7, 32, 45, 96}) {
      const Weight w = testing::random_weight(rng, rows, cols, 1.0f);
      for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
        auto qw = quantize_weight(w, q);
        ASSERT_TRUE(qw.ok()) << qw.status().message();
        const Weight il = interleave_rows(*qw);
        ASSERT_TRUE(il.interleaved);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            ASSERT_EQ(il.at(r, c), qw->at(r, c)) << rows << "x" << cols << " q" << (q == WeightQuant::kQ8 ? 8 : 4)
                                                 << " (" << r << ", " << c << ")";
            if (q == WeightQuant::kQ4) {
              ASSERT_EQ(il.q4_nibble(r, c), qw->q4_nibble(r, c));
            } else {
              ASSERT_EQ(il.q8_value(r, c), qw->q8_value(r, c));
            }
          }
        // The 16 rows' scales lie right after their group's values, and group g + 1 after those
        // scales; row r's 4 bytes of a chunk are bytes 4r .. 4r + 3 (the kernels' lanes).
        const int64_t stride = il.interleaved_group_stride();
        const auto* base = static_cast<const uint8_t*>(il.data);
        ASSERT_EQ(reinterpret_cast<const uint8_t*>(il.scales + il.scale_index(0, 0)) - base, stride - 64);
        ASSERT_EQ(il.scale_index(rows - 1, 0) - il.scale_index(0, 0), (rows - 1) / 16 * il.groups_per_row() * stride / 4 + (rows - 1) % 16);
        if (il.groups_per_row() > 1) {
          ASSERT_EQ(il.group_offset(0, 1), stride);
        }
        const int64_t r = rows - 1, block = r / 16 * il.groups_per_row() * stride;
        if (q == WeightQuant::kQ8) {  // column 5: chunk 1, byte 1 of the row's lane
          if (cols > 5) {
            ASSERT_EQ(static_cast<int8_t>(base[block + 64 + 4 * (r % 16) + 1]), qw->q8_value(r, 5));
          }
        } else if (cols > 13) {  // column 13: chunk 1, high nibble of byte 1 of the row's lane
          ASSERT_EQ(base[block + 64 + 4 * (r % 16) + 1] >> 4, qw->q4_nibble(r, 13));
        }
      }
    }
  }
}

// Loading spreads quantisation and interleaving over the command's pool (64 rows a task): the
// result must be byte for byte what the loading thread alone writes, padding and scales included,
// for row counts that leave a short last task and a short last block (of 8 or 16).
TEST(Quantize, SpreadOverAPoolWritesTheSameBytes) {
  std::mt19937 rng(23);
  ThreadPool pool(3);
  auto same_bytes = [](const Weight& a, const Weight& b, size_t bytes) {
    return std::memcmp(a.data, b.data, bytes) == 0;
  };
  for (int64_t rows : {77, 200}) {
    for (int64_t cols : {45, 100}) {
      for (DType dtype : {DType::kF32, DType::kBF16}) {
        const Weight w = testing::random_weight(rng, rows, cols, 1.0f, dtype);
        const std::string what = std::to_string(rows) + "x" + std::to_string(cols) + " " + dtype_name(dtype);
        // f32/bf16 interleaved: blocks of 8 rows x padded columns.
        const Weight il_alone = interleave_rows(w), il_pool = interleave_rows(w, &pool);
        const size_t il_bytes = static_cast<size_t>((rows + 7) / 8 * 8 * il_alone.padded_cols()) * dtype_size(dtype);
        EXPECT_TRUE(same_bytes(il_alone, il_pool, il_bytes)) << what;
        for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
          auto alone = quantize_weight(w, q);
          auto spread = quantize_weight(w, q, &pool);
          ASSERT_TRUE(alone.ok() && spread.ok());
          const size_t value_bytes = static_cast<size_t>(rows * (q == WeightQuant::kQ8 ? cols : alone->q4_row_bytes()));
          EXPECT_TRUE(same_bytes(*alone, *spread, value_bytes)) << what << " " << quant_name(q);
          EXPECT_EQ(std::memcmp(alone->scales, spread->scales, static_cast<size_t>(rows * alone->groups_per_row()) * 4), 0)
              << what << " " << quant_name(q);
          const Weight qil_alone = interleave_rows(*alone), qil_pool = interleave_rows(*alone, &pool);
          const size_t qil_bytes = static_cast<size_t>((rows + 15) / 16 * alone->groups_per_row() * qil_alone.interleaved_group_stride());
          EXPECT_TRUE(same_bytes(qil_alone, qil_pool, qil_bytes)) << what << " " << quant_name(q) << " interleaved";
        }
      }
    }
  }
}

// Loading with --weights quantises straight into the interleaved layout (quantize_interleaved,
// each task's rows through a buffer of its own): byte for byte the interleaved copy of the
// row-major quantised matrix, padding and scales included, alone and on a pool, with a short last
// task, block and group.
TEST(Quantize, StraightIntoTheInterleavedLayoutWritesTheSameBytes) {
  std::mt19937 rng(25);
  ThreadPool pool(3);
  for (int64_t rows : {77, 200}) {
    for (int64_t cols : {45, 100}) {
      for (DType dtype : {DType::kF32, DType::kBF16}) {
        const Weight w = testing::random_weight(rng, rows, cols, 1.0f, dtype);
        for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
          const std::string what = std::to_string(rows) + "x" + std::to_string(cols) + " " + dtype_name(dtype) + " " + quant_name(q);
          const Weight want = interleave_rows(quantize_weight(w, q).value());
          const size_t bytes = static_cast<size_t>((rows + 15) / 16 * want.groups_per_row() * want.interleaved_group_stride());
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            auto got = quantize_interleaved(w, q, p);
            ASSERT_TRUE(got.ok()) << what;
            EXPECT_TRUE(got->interleaved && got->quant == q && got->rows == rows && got->cols == cols) << what;
            EXPECT_EQ(std::memcmp(got->data, want.data, bytes), 0) << what << (p ? " pool" : " alone");
            EXPECT_EQ(got->scales, static_cast<const float*>(got->data) + (want.scales - static_cast<const float*>(want.data)))
                << what;
          }
        }
      }
    }
  }
}

// Loading quantises bf16 experts as stored instead of widening them to f32 first
// (WeightLoader::expert_matrix): the quantiser must write the same bytes from either.
TEST(Quantize, Bf16AndItsF32WideningGiveTheSameBytes) {
  std::mt19937 rng(24);
  for (int64_t cols : {45, 96}) {
    const Weight bf = testing::random_weight(rng, 70, cols, 0.5f, DType::kBF16);
    Weight f32 = make_owned_weight(DType::kF32, bf.rows, cols);
    for (int64_t i = 0; i < bf.rows * cols; ++i)
      static_cast<float*>(const_cast<void*>(f32.data))[i] = bf16_to_f32(bf.bf16()[i]);
    for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
      auto a = quantize_weight(bf, q);
      auto b = quantize_weight(f32, q);
      ASSERT_TRUE(a.ok() && b.ok());
      const size_t value_bytes = static_cast<size_t>(bf.rows * (q == WeightQuant::kQ8 ? cols : a->q4_row_bytes()));
      EXPECT_EQ(std::memcmp(a->data, b->data, value_bytes), 0) << cols << " " << quant_name(q);
      EXPECT_EQ(std::memcmp(a->scales, b->scales, static_cast<size_t>(bf.rows * a->groups_per_row()) * 4), 0);
    }
  }
}

TEST(Quantize, MatmulEqualsDequantisedMatmul) {
  std::mt19937 rng(22);
  ThreadPool pool(2);
  for (int64_t K : {64, 50}) {
    const int64_t M = 3, N = 19;
    const Weight w = testing::random_weight(rng, N, K, 0.5f);
    const std::vector<float> x = testing::random_vector(rng, M * K);
    for (WeightQuant q : {WeightQuant::kQ8, WeightQuant::kQ4}) {
      auto qw = quantize_weight(w, q);
      ASSERT_TRUE(qw.ok());
      std::vector<float> y(M * N);
      matmul(pool, x.data(), M, *qw, y.data(), Precision{});
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          // The integer path quantises the input per group of 32 (step amax / 127): each
          // product may be off by |w| * step / 2 on top of f32 rounding.
          double s = 0, budget = 0;
          for (int64_t k = 0; k < K; ++k) {
            s += static_cast<double>(x[m * K + k]) * qw->at(n, k);
            float amax = 0;
            for (int64_t j = k / 32 * 32; j < std::min(K, k / 32 * 32 + 32); ++j) amax = std::max(amax, std::fabs(x[m * K + j]));
            budget += std::fabs(qw->at(n, k)) * 0.5 * amax / 127;
          }
          EXPECT_NEAR(y[m * N + n], s, budget + 1e-4 * (1 + std::fabs(s)));
        }
    }
  }
}

TEST(Quantize, ZeroRowsAndRequantisingAreHandled) {
  Weight w = make_owned_weight(DType::kF32, 2, 40);
  std::fill(static_cast<float*>(const_cast<void*>(w.data)), static_cast<float*>(const_cast<void*>(w.data)) + 80, 0.0f);
  auto q = quantize_weight(w, WeightQuant::kQ4);
  ASSERT_TRUE(q.ok());
  for (int64_t c = 0; c < 40; ++c) EXPECT_EQ(q->at(1, c), 0.0f);
  EXPECT_FALSE(quantize_weight(*q, WeightQuant::kQ8).ok());
}

}  // namespace
}  // namespace moepp
