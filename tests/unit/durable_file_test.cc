// ReplacingFile / write_file_replacing: the new bytes replace the old whole, and a failed write
// leaves the old file and no partial file behind. (That the bytes reach the disk before the
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

TEST_F(DurableFile, AnUncommittedFileLeavesTheOld) {
  const fs::path target = dir_ / "state.json";
  ASSERT_TRUE(write_file_replacing(target.string(), "old", 3).ok());
  {
    ReplacingFile out;
    ASSERT_TRUE(out.open(target.string()).ok());
    std::fputs("new, half written", out.get());
    EXPECT_EQ(read_all(target), "old");  // readable meanwhile
  }  // an error or an exception: never committed
  EXPECT_EQ(read_all(target), "old");
  EXPECT_FALSE(fs::exists(target.string() + ".partial"));
  ReplacingFile failed;
  ASSERT_TRUE(failed.open(target.string()).ok());
  Status s = failed.commit(false);  // a write the caller saw fail
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("write failed"), std::string::npos) << s.message();
  EXPECT_EQ(read_all(target), "old");
  EXPECT_FALSE(fs::exists(target.string() + ".partial"));
}

// What the CLI's SIGINT/SIGTERM handler does: the open partial files go, the old files stay.
TEST_F(DurableFile, TheSignalCleanupRemovesOpenPartialFiles) {
  const fs::path a = dir_ / "a.safetensors", b = dir_ / "b.json";
  ASSERT_TRUE(write_file_replacing(a.string(), "old", 3).ok());
  ReplacingFile out_a, out_b;
  ASSERT_TRUE(out_a.open(a.string()).ok());
  ASSERT_TRUE(out_b.open(b.string()).ok());
  std::fputs("partial", out_a.get());
  ASSERT_TRUE(fs::exists(a.string() + ".partial"));
  ASSERT_TRUE(fs::exists(b.string() + ".partial"));
  remove_partial_files_in_signal_handler();
  EXPECT_FALSE(fs::exists(a.string() + ".partial"));
  EXPECT_FALSE(fs::exists(b.string() + ".partial"));
  EXPECT_EQ(read_all(a), "old");
  EXPECT_FALSE(fs::exists(b));
  // Committed files are off the list: a later signal touches nothing.
  ReplacingFile out_c;
  ASSERT_TRUE(out_c.open(a.string()).ok());
  ASSERT_TRUE(out_c.commit(std::fputs("new", out_c.get()) >= 0).ok());
  remove_partial_files_in_signal_handler();
  EXPECT_EQ(read_all(a), "new");
}

TEST_F(DurableFile, ASymlinkKeepsPointingAtTheNewBytes) {
  const fs::path real = dir_ / "real.json", link = dir_ / "link.json";
  ASSERT_TRUE(write_file_replacing(real.string(), "old", 3).ok());
  fs::create_symlink(real, link);
  ASSERT_TRUE(write_file_replacing(link.string(), "new", 3).ok());
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_all(real), "new");
  EXPECT_EQ(read_all(link), "new");
}

TEST_F(DurableFile, ADeviceIsWrittenInPlace) {
  // /dev/null stays the device (as root a rename would have put a plain file there).
  ASSERT_TRUE(write_file_replacing("/dev/null", "bytes", 5).ok());
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_FALSE(fs::exists("/dev/null.partial"));
}

}  // namespace
}  // namespace moepp
