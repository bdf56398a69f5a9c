// fsync before and after the rename (see durable_file.h).
#include "platform/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace moepp {
namespace {

Status sync_path(const std::string& path, int flags, const std::string& what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::Error(what + ": cannot open to flush it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot flush a directory (EINVAL): the rename is as durable as they allow.
  if (rc != 0 && !(err == EINVAL && (flags & O_DIRECTORY))) return Status::Error(what + ": flush failed: " + std::strerror(err));
  return Status::Ok();
}

std::string parent_directory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status commit_replacement(const std::string& written, const std::string& target) {
  MOEPP_RETURN_IF_ERROR(sync_path(written, O_RDONLY, written));
  if (std::rename(written.c_str(), target.c_str()) != 0) {
    const int err = errno;
    return Status::Error(target + ": cannot replace it with " + written + ": " + std::strerror(err));
  }
  return sync_path(parent_directory(target), O_RDONLY | O_DIRECTORY, parent_directory(target));
}

Status write_file_replacing(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::Error(tmp + ": cannot open for writing: " + std::strerror(errno));
  const bool written = std::fwrite(data, 1, size, f) == size;
  const bool closed = std::fclose(f) == 0;
  Status s = written && closed ? commit_replacement(tmp, path) : Status::Error(tmp + ": write failed (disk full?)");
  if (!s.ok()) std::remove(tmp.c_str());
  return s;
}

}  // namespace moepp
