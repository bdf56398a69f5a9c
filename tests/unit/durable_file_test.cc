// ReplacingFile / write_file_replacing: the new bytes replace the old whole, and a failed write
// leaves the old file and no partial file behind. (That the bytes reach the disk before the
// rename is fsync's promise; a test cannot cut the power.)
#include "platform/durable_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

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
  EXPECT_FALSE(fs::exists(target.string() + ".partial"));
  EXPECT_TRUE(write_file_replacing(target.string(), "", 0).ok());
  EXPECT_EQ(fs::file_size(target), 0u);
}

TEST_F(DurableFile, AFailedRenameKeepsTheOldAndCleansUp) {
  // The target becomes a non-empty directory while its replacement is written: the rename fails.
  const fs::path target = dir_ / "busy";
  ReplacingFile out;
  ASSERT_TRUE(out.open(target.string()).ok());
  std::fputs("x", out.get());
  fs::create_directories(target / "inside");
  Status s = out.commit(true);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot replace"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_FALSE(fs::exists(target.string() + ".partial"));
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
  {
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
  }  // closed uncommitted: off the list
  // A committed file is off the list too: a later signal leaves a file of that name alone.
  ReplacingFile out_c;
  ASSERT_TRUE(out_c.open(a.string()).ok());
  ASSERT_TRUE(out_c.commit(std::fputs("new", out_c.get()) >= 0).ok());
  EXPECT_EQ(read_all(a), "new");
  { std::ofstream(a.string() + ".partial") << "someone else's"; }
  remove_partial_files_in_signal_handler();
  EXPECT_EQ(read_all(a.string() + ".partial"), "someone else's");
}

// The handler itself: SIGTERM or SIGHUP during a write removes the partial file and ends the
// process by the signal, as the default action would.
TEST_F(DurableFile, ASignalDuringAWriteLeavesNoPartialFile) {
  const fs::path target = dir_ / "model.safetensors";
  for (int sig : {SIGTERM, SIGHUP}) {
    EXPECT_EXIT(
        {
          remove_partial_files_on_interrupt();
          ReplacingFile out;
          if (out.open(target.string()).ok() && fs::exists(target.string() + ".partial")) std::raise(sig);
          std::exit(0);  // not reached when the handler works
        },
        ::testing::KilledBySignal(sig), "");
    EXPECT_FALSE(fs::exists(target.string() + ".partial")) << "signal " << sig;
    EXPECT_FALSE(fs::exists(target));
  }
}

TEST_F(DurableFile, ASymlinkIsReplacedAsALink) {
  // What the link named (say a blob a model cache shares between revisions) stays as it was.
  const fs::path blob = dir_ / "blob", link = dir_ / "model.safetensors";
  ASSERT_TRUE(write_file_replacing(blob.string(), "old", 3).ok());
  fs::create_symlink(blob, link);
  ASSERT_TRUE(write_file_replacing(link.string(), "new", 3).ok());
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(read_all(link), "new");
  EXPECT_EQ(read_all(blob), "old");
}

TEST_F(DurableFile, APipeIsWrittenInPlace) {
  // A FIFO stays a FIFO and its reader gets the bytes (a rename would have put a file there).
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  ASSERT_TRUE(write_file_replacing(fifo.string(), "bytes", 5).ok());
  char got[8] = {};
  EXPECT_EQ(::read(reader, got, sizeof(got)), 5);
  ::close(reader);
  EXPECT_EQ(std::string(got), "bytes");
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_FALSE(fs::exists(fifo.string() + ".partial"));
}

}  // namespace
}  // namespace moepp
