// fsync before and after the rename (see durable_file.h).
#include "platform/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

ReplacingFile::~ReplacingFile() {
  if (f_ == nullptr) return;
  std::fclose(f_);
  if (!partial_.empty()) std::remove(partial_.c_str());
}

Status ReplacingFile::open(const std::string& path) {
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
