// Saved-logits files round trip (full and top-k), KL values, and clean errors on bad files.
#include "eval/kl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

namespace moepp {
namespace {

std::string tmp_path(const char* name) { return ::testing::TempDir() + name; }

TEST(SavedLogits, FullRoundTripAndZeroKl) {
  const std::string path = tmp_path("full.lgt");
  const float a[4] = {1.0f, 2.0f, 0.5f, -1.0f}, b[4] = {0.0f, 0.0f, 3.0f, 1.0f};
  LogitsWriter w;
  ASSERT_TRUE(w.open(path, 4, 0).ok());
  ASSERT_TRUE(w.add(1, a).ok());
  ASSERT_TRUE(w.add(2, b).ok());
  ASSERT_TRUE(w.close().ok());
  LogitsReader r;
  ASSERT_TRUE(r.open(path).ok());
  EXPECT_EQ(r.n_rows(), 2);
  EXPECT_EQ(r.vocab_size(), 4);
  LogitsRow row;
  ASSERT_TRUE(r.next(&row).ok());
  EXPECT_EQ(row.target, 1);
  std::vector<double> lp;
  log_softmax(a, 4, &lp);
  EXPECT_NEAR(kl_divergence(row, lp), 0.0, 1e-7);
  std::vector<double> other;
  log_softmax(b, 4, &other);
  // KL(p||q) = sum p (log p - log q), computed directly
  double want = 0.0;
  for (int i = 0; i < 4; ++i) want += std::exp(lp[i]) * (lp[i] - other[i]);
  EXPECT_NEAR(kl_divergence(row, other), want, 1e-6);
  ASSERT_TRUE(r.next(&row).ok());
  EXPECT_FALSE(r.next(&row).ok());  // past the end
}

TEST(SavedLogits, TopKIsALowerBound) {
  const std::string path = tmp_path("topk.lgt");
  const float a[5] = {3.0f, 1.0f, 0.0f, -1.0f, 2.0f}, b[5] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  LogitsWriter w;
  ASSERT_TRUE(w.open(path, 5, 2).ok());
  ASSERT_TRUE(w.add(0, a).ok());
  ASSERT_TRUE(w.close().ok());
  LogitsReader r;
  ASSERT_TRUE(r.open(path).ok());
  LogitsRow row;
  ASSERT_TRUE(r.next(&row).ok());
  EXPECT_EQ(row.ids, (std::vector<int32_t>{0, 4}));
  std::vector<double> pa, pb;
  log_softmax(a, 5, &pa);
  log_softmax(b, 5, &pb);
  EXPECT_NEAR(row.rest_logprob, std::log(std::exp(pa[1]) + std::exp(pa[2]) + std::exp(pa[3])), 1e-6);
  EXPECT_NEAR(kl_divergence(row, pa), 0.0, 1e-6);
  double full = 0.0;
  for (int i = 0; i < 5; ++i) full += std::exp(pa[i]) * (pa[i] - pb[i]);
  const double bound = kl_divergence(row, pb);
  EXPECT_GT(bound, 0.0);
  EXPECT_LE(bound, full + 1e-9);
}

TEST(SavedLogits, BadFiles) {
  LogitsReader missing;
  EXPECT_FALSE(missing.open(tmp_path("does-not-exist.lgt")).ok());
  const std::string bad = tmp_path("bad.lgt");
  { std::ofstream(bad) << "NOTMAGIC0123456789012345678901234"; }
  LogitsReader r;
  Status s = r.open(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bad magic"), std::string::npos) << s.message();
  const std::string shortf = tmp_path("short.lgt");
  { std::ofstream(shortf) << "MOEPP"; }
  LogitsReader r2;
  s = r2.open(shortf);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("truncated header"), std::string::npos) << s.message();
  // A header promising rows that are not there.
  const std::string trunc = tmp_path("trunc.lgt");
  {
    LogitsWriter w;
    const float a[3] = {0, 1, 2};
    ASSERT_TRUE(w.open(trunc, 3, 0).ok());
    ASSERT_TRUE(w.add(0, a).ok());
    ASSERT_TRUE(w.close().ok());
  }
  {
    std::fstream f(trunc, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16);
    const uint64_t rows = 5;
    f.write(reinterpret_cast<const char*>(&rows), 8);
  }
  LogitsReader r3;
  ASSERT_TRUE(r3.open(trunc).ok());
  LogitsRow row;
  EXPECT_TRUE(r3.next(&row).ok());
  s = r3.next(&row);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("row 1 truncated"), std::string::npos) << s.message();
}

// Rows go to PATH.partial until close(): a run that stops early (an error, ^C) leaves the old
// file whole, and readable while the new one is written.
TEST(SavedLogits, TheOldFileStaysUntilClose) {
  const std::string path = tmp_path("replace.lgt");
  const float a[3] = {0, 1, 2}, b[3] = {2, 1, 0};
  auto write = [&](const float* row, int rows, bool close) {
    LogitsWriter w;
    ASSERT_TRUE(w.open(path, 3, 0).ok());
    for (int i = 0; i < rows; ++i) ASSERT_TRUE(w.add(0, row).ok());
    if (close) {
      ASSERT_TRUE(w.close().ok());
    }
  };
  write(a, 1, true);
  {
    LogitsWriter w;  // reading the old file while the new one is written
    ASSERT_TRUE(w.open(path, 3, 0).ok());
    ASSERT_TRUE(w.add(0, b).ok());
    LogitsReader r;
    ASSERT_TRUE(r.open(path).ok());
    EXPECT_EQ(r.n_rows(), 1);
  }
  write(b, 3, false);  // abandoned
  LogitsReader old_file;
  ASSERT_TRUE(old_file.open(path).ok());
  EXPECT_EQ(old_file.n_rows(), 1);
  EXPECT_FALSE(std::ifstream(path + ".partial").good());
  write(b, 2, true);
  LogitsReader new_file;
  ASSERT_TRUE(new_file.open(path).ok());
  EXPECT_EQ(new_file.n_rows(), 2);
  EXPECT_FALSE(std::ifstream(path + ".partial").good());
}

TEST(SavedLogits, Summary) {
  const KlSummary s = summarize_kl({0.0, 0.1, 0.2, 0.3}, 3);
  EXPECT_NEAR(s.mean, 0.15, 1e-12);
  EXPECT_NEAR(s.max, 0.3, 1e-12);
  EXPECT_NEAR(s.same_top1, 0.75, 1e-12);
}

}  // namespace
}  // namespace moepp
