// fsync before and after the rename (see durable_file.h).
#include "platform/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>

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

// Partial files being written, for remove_partial_files_in_signal_handler (which may run on any
// thread): each slot holds a copy of an open ReplacingFile's partial path, listed before the file
// is created and unlisted after it is renamed or removed. state: 0 free, 1 being filled, 2 listed.
constexpr int kPartialSlots = 16;
struct PartialSlot {
  std::atomic<int> state{0};
  char path[4096];
};
PartialSlot g_partials[kPartialSlots];
static_assert(std::atomic<int>::is_always_lock_free);

int list_partial(const std::string& path) {
  if (path.size() >= sizeof(PartialSlot::path)) return -1;
  for (int i = 0; i < kPartialSlots; ++i) {
    int expected = 0;
    if (!g_partials[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_partials[i].path, path.c_str(), path.size() + 1);
    g_partials[i].state.store(2);
    return i;
  }
  return -1;  // more files open at once than slots: that one is not cleaned up on a signal
}

void unlist_partial(int* slot) {
  if (*slot >= 0) g_partials[*slot].state.store(0);
  *slot = -1;
}

extern "C" void remove_partials_and_reraise(int sig) {
  remove_partial_files_in_signal_handler();
  std::signal(sig, SIG_DFL);
  std::raise(sig);  // blocked until the handler returns, then ends the process as the signal would
}

// Paths that name the process's own streams or devices (/dev/stdout, /proc/self/fd/1): written
// in place even when they lead to a regular file (a rename would replace the link, and a shell's
// `>>` would become a replace).
bool is_system_path(const std::string& path) { return path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0; }

}  // namespace

void remove_partial_files_in_signal_handler() {
  for (PartialSlot& slot : g_partials)
    if (slot.state.load() == 2) ::unlink(slot.path);
}

void remove_partial_files_on_interrupt() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {  // SIGHUP: the terminal or the ssh session went away
    struct sigaction old {};
    // Ignored when started (a script's background job ignores ^C): it stays ignored.
    if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = remove_partials_and_reraise;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

ReplacingFile::~ReplacingFile() {
  if (f_ != nullptr) {
    std::fclose(f_);
    if (!partial_.empty()) std::remove(partial_.c_str());
  }
  unlist_partial(&slot_);
}

Status ReplacingFile::open(const std::string& path) {
  if (f_ != nullptr) return Status::Error(path + ": opened for replacing while " + path_ + " is still open");
  path_ = path;
  partial_.clear();
  struct stat st;  // a symlink is replaced as a link (what it names, say a shared blob, stays)
  const bool in_place = is_system_path(path) || (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode));
  if (!in_place) {
    partial_ = path + ".partial";
    slot_ = list_partial(partial_);
  }
  const std::string& opened = in_place ? path : partial_;
  f_ = std::fopen(opened.c_str(), "wb");
  if (f_ == nullptr) {
    const int err = errno;
    unlist_partial(&slot_);
    return Status::Error(opened + ": cannot open for writing: " + std::strerror(err));
  }
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
  if (std::fclose(f_) != 0 && ok) {
    ok = false;
    err = errno;
  }
  f_ = nullptr;
  if (!ok) {
    if (!partial_.empty()) std::remove(partial_.c_str());
    unlist_partial(&slot_);
    return Status::Error(path_ + ": write failed" + (written_ok ? std::string(": ") + std::strerror(err) : " (disk full?)"));
  }
  if (partial_.empty()) return Status::Ok();
  const bool renamed = std::rename(partial_.c_str(), path_.c_str()) == 0;
  err = errno;
  if (!renamed) std::remove(partial_.c_str());
  unlist_partial(&slot_);  // after the rename: a signal meanwhile unlinks a name already gone
  if (!renamed) return Status::Error(path_ + ": cannot replace it with " + partial_ + ": " + std::strerror(err));
  return sync_directory(parent_directory(path_));
}

Status write_file_replacing(const std::string& path, const void* data, size_t size) {
  ReplacingFile out;
  MOEPP_RETURN_IF_ERROR(out.open(path));
  return out.commit(std::fwrite(data, 1, size, out.get()) == size);
}

}  // namespace moepp
