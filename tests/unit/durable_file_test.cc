// write_file_replacing / commit_replacement: the new bytes replace the old whole, and a failed
// write leaves the old file and no temporary behind. (That the bytes reach the disk before the
// rename is fsync's promise; a test cannot cut the power.)
#include "platform/durable_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace moepp {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DurableFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("moepp_durable_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DurableFile, ReplacesTheOldBytesWhole) {
  const fs::path target = dir_ / "config.json";
  const std::string old_text(100000, 'o'), new_text = "{\"new\": true}\n";
  ASSERT_TRUE(write_file_replacing(target.string(), old_text.data(), old_text.size()).ok());
  EXPECT_EQ(read_all(target), old_text);
  ASSERT_TRUE(write_file_replacing(target.string(), new_text.data(), new_text.size()).ok());
  EXPECT_EQ(read_all(target), new_text);  // shorter: no tail of the old bytes
  EXPECT_FALSE(fs::exists(target.string() + ".tmp"));
  EXPECT_TRUE(write_file_replacing(target.string(), "", 0).ok());
  EXPECT_EQ(fs::file_size(target), 0u);
}

TEST_F(DurableFile, AFailedReplacementKeepsTheOldAndCleansUp) {
  // The target is a non-empty directory: the rename fails after the bytes were written.
  const fs::path target = dir_ / "busy";
  fs::create_directories(target / "inside");
  Status s = write_file_replacing(target.string(), "x", 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(target.string()), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_FALSE(fs::exists(target.string() + ".tmp"));
  // A directory that does not exist: named, nothing created.
  s = write_file_replacing((dir_ / "missing" / "f.json").string(), "x", 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

TEST_F(DurableFile, CommitNamesAWrittenFileThatIsNotThere) {
  Status s = commit_replacement((dir_ / "never_written").string(), (dir_ / "target").string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("never_written"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir_ / "target"));
}

}  // namespace
}  // namespace moepp
