// Files that replace others whole: written beside the target, flushed to the disk, then renamed
// over it. After a crash or a power cut the target holds its old bytes or all of the new ones,
// never a prefix: a rename alone does not order the data's writes before it (ext4 may persist
// the rename first and leave an empty file behind).
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

#include "base/status.h"

namespace moepp {

class ReplacingFile {
 public:
  ReplacingFile() = default;
  ReplacingFile(const ReplacingFile&) = delete;
  ReplacingFile& operator=(const ReplacingFile&) = delete;
  // Not committed (an error, an exception): the partial file goes and the old file stays.
  ~ReplacingFile();

  // Opens the file that will replace `path`: PATH.partial beside it (a symlink is replaced as a
  // link: the file it named, say a shared blob, stays as it was). A device, a pipe or a path
  // under /dev/ or /proc/ (/dev/null, /dev/stdout) is written in place.
  Status open(const std::string& path);
  FILE* get() const { return f_; }
  // Closes the file, flushes it to the disk, renames it over the target and flushes the
  // directory. `written_ok`: whether every write succeeded (false: an error naming the path).
  // An error flushing the directory comes after the rename: the new file is in place.
  Status commit(bool written_ok);

 private:
  std::string path_;     // the file replaced
  std::string partial_;  // empty: written in place
  FILE* f_ = nullptr;
  int slot_ = -1;  // partial_ in the signal handler's list (-1: not listed)
};

// For a command's SIGINT/SIGTERM handler: removes the partial files of ReplacingFiles still open
// (unlink only: async-signal-safe), so an interrupted `quantize` of a large model leaves no
// gigabytes behind. The old files stay whole either way.
void remove_partial_files_in_signal_handler();
// Installs that cleanup for SIGINT, SIGTERM and SIGHUP (unless ignored when the process
// started), each then ending the process as the signal would have (a command with handlers of
// its own, such as serve, replaces them).
void remove_partial_files_on_interrupt();

// Writes `size` bytes to replace `path` (ReplacingFile); the partial file goes on error.
Status write_file_replacing(const std::string& path, const void* data, size_t size);

}  // namespace moepp
