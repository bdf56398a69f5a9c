// fsync before and after the rename (see durable_file.h).
#include "platform/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

namespace moepp {
namespace {

std::string parent_directory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The directory entry of a rename, on the disk. Some file systems cannot flush a directory
// (EINVAL): the rename is then as durable as they allow.
Status sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Error(dir + ": cannot open to flush the renamed file's entry: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) return Status::Error(dir + ": flushing the renamed file's entry failed: " + std::strerror(err));
  return Status::Ok();
}

// Partial files being written, for remove_partial_files_in_signal_handler: each slot holds the
// c_str() of a ReplacingFile's partial_ while it is open (the string is not touched meanwhile).
constexpr int kPartialSlots = 16;
std::atomic<const char*> g_partials[kPartialSlots];

int list_partial(const std::string& path) {
  for (int i = 0; i < kPartialSlots; ++i) {
    const char* expected = nullptr;
    if (g_partials[i].compare_exchange_strong(expected, path.c_str())) return i;
  }
  return -1;  // more files open at once than slots: that one is not cleaned up on a signal
}

void unlist_partial(int* slot) {
  if (*slot >= 0) g_partials[*slot].store(nullptr);
  *slot = -1;
}

extern "C" void remove_partials_and_reraise(int sig) {
  remove_partial_files_in_signal_handler();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void remove_partial_files_in_signal_handler() {
  for (std::atomic<const char*>& p : g_partials)
    if (const char* path = p.load()) ::unlink(path);
}

void remove_partial_files_on_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = remove_partials_and_reraise;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

ReplacingFile::~ReplacingFile() {
  unlist_partial(&slot_);
  if (f_ == nullptr) return;
  std::fclose(f_);
  if (!partial_.empty()) std::remove(partial_.c_str());
}

Status ReplacingFile::open(const std::string& path) {
  if (f_ != nullptr) return Status::Error(path + ": opened for replacing while " + path_ + " is still open");
  path_ = target_ = path;
  partial_.clear();
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {  // replace what the link names
    std::error_code ec;
    const std::filesystem::path resolved = std::filesystem::weakly_canonical(path, ec);
    if (!ec) target_ = resolved.string();
  }
  const bool in_place = ::stat(target_.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  if (!in_place) partial_ = target_ + ".partial";
  const std::string& opened = in_place ? target_ : partial_;
  f_ = std::fopen(opened.c_str(), "wb");
  if (f_ == nullptr) return Status::Error(opened + ": cannot open for writing: " + std::strerror(errno));
  if (!partial_.empty()) slot_ = list_partial(partial_);
  return Status::Ok();
}

Status ReplacingFile::commit(bool written_ok) {
  if (f_ == nullptr) return Status::Error(path_ + ": not open for writing");
  bool ok = written_ok && std::fflush(f_) == 0;
  int err = errno;
  if (ok && !partial_.empty() && ::fsync(::fileno(f_)) != 0) {  // the data before the rename
    ok = false;
    err = errno;
  }
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  unlist_partial(&slot_);  // renamed or removed below
  if (!ok) {
    if (!partial_.empty()) std::remove(partial_.c_str());
    return Status::Error(path_ + ": write failed" + (written_ok ? std::string(": ") + std::strerror(err) : " (disk full?)"));
  }
  if (partial_.empty()) return Status::Ok();
  if (std::rename(partial_.c_str(), target_.c_str()) != 0) {
    err = errno;
    std::remove(partial_.c_str());
    return Status::Error(path_ + ": cannot replace it with " + partial_ + ": " + std::strerror(err));
  }
  return sync_directory(parent_directory(target_));
}

Status write_file_replacing(const std::string& path, const void* data, size_t size) {
  ReplacingFile out;
  MOEPP_RETURN_IF_ERROR(out.open(path));
  return out.commit(std::fwrite(data, 1, size, out.get()) == size);
}

}  // namespace moepp
