// Files that replace others whole: written beside the target, flushed to the disk, then renamed
// over it. After a crash or a power cut the target holds its old bytes or all of the new ones,
// never a prefix: a rename alone does not order the data's writes before it (ext4 may persist
// the rename first and leave an empty file behind).
#pragma once

#include <string>
#include <cstddef>

#include "base/status.h"

namespace moepp {

// Flushes `written` (a closed file) to the disk, renames it over `target` and flushes the
// directory entry. On error `written` is left for the caller to remove.
Status commit_replacement(const std::string& written, const std::string& target);

// Writes `size` bytes to PATH.tmp and commits it over `path`; the temporary goes on error.
Status write_file_replacing(const std::string& path, const void* data, size_t size);

}  // namespace moepp
