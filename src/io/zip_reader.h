// Minimal read-only ZIP reader for torch.save archives: "stored" entries only, ZIP64 aware,
// every offset and size checked against the buffer; entries are zero-copy byte ranges.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace moepp {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // of the entry's bytes in the archive
  uint64_t size = 0;
};

class ZipReader {
 public:
  // Parses the central directory of the archive in `data` (which must outlive the reader).
  // Rejects compressed or encrypted entries, multi-disk archives, names that escape the
  // archive root ("/x", "a/../b", backslashes), duplicate names and out-of-range offsets.
  static Result<ZipReader> parse(const uint8_t* data, size_t size, const std::string& file_name);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  const uint8_t* entry_data(const ZipEntry& e) const { return data_ + e.data_offset; }
  const std::string& file_name() const { return file_name_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string file_name_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t> index_;
};

}  // namespace moepp
